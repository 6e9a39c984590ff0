"""What a mail server says about itself over SSH: services, drift from the guide, certificate, space, queue,
updates, SSH logins and the ban on password guessers. Everything here reads; nothing is written on the server.

>>> parse_df("Use% IUse%\\n 12%   3%\\n")
(12, 3)
>>> count_updates("Inst libc6 [2.41-12] (2.41-12+deb13u1 Debian-Security:13/stable-security [amd64])\\n")
(1, 1)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailkit.clients.smtp import greeting
from mailkit.core.errors import MailkitError
from mailkit.core.facts import PackageVersion, gather
from mailkit.core.mail_layout import LAYOUT
from mailkit.core.resources import Change, File, MasterService, Postconf, Resource
from mailkit.core.ssh import Connection
from mailkit.core.text import shorten
from mailkit.domain.reports import DmarcReport, Report, ReportRefused, TlsReport, reports_in_message, sources
from mailkit.guide import backups, chapters, smarthost
from mailkit.guide.chapters import PART_OF_PACKAGE, chapter
from mailkit.guide.guessing import JAILS, SECTION
from mailkit.guide.parts import Parts
from mailkit.server import rules
from mailkit.server.backup_runs import UNIT, read_backup_runs
from mailkit.server.bans import read_bans
from mailkit.server.certificates import MIN_DAYS_LEFT, CertificateOnHost
from mailkit.server.mail_queue import MailQueue, read_queue
from mailkit.server.report_mail import read_report_messages
from mailkit.status.rows import Row

P3 = chapter(3).notebook

if TYPE_CHECKING:
    from mailkit.guide.part1 import Part1

#: A disk or inode table this full is a failure (mail stops being accepted near 100 %).
FULL_PERCENT = 90
#: More messages than this waiting in the queue is a failure (the server cannot deliver).
QUEUE_LIMIT = 100
DKIM_SIGNING = "/etc/rspamd/local.d/dkim_signing.conf"
#: The services each part runs, by package (the registry of chapters says).
SERVICES = PART_OF_PACKAGE
UNITS = {"dovecot-core": "dovecot"}


@dataclass
class ServerFacts:
    """What the checks need to know of the server, read once: names, parts applied, packages, DKIM keys."""

    hostname: str
    domains: list[str]
    parts: list[int]
    packages: dict[str, str | None]
    cert_file: str
    key_file: str
    selector: str | None
    public_keys: dict[str, str] = field(default_factory=dict)
    #: Where Postfix hands outgoing mail ("" for direct delivery; a relay when the provider blocks port 25).
    relayhost: str = ""

    def part1(self) -> Part1:
        """Part 1 with the server's own names (one mailbox stands in: the checks never read the maps)."""
        from mailkit.guide.part1 import Part1

        return Part1(self.domains[0], self.domains[1:], self.hostname, (f"postmaster@{self.domains[0]}",))


def read_facts(conn: Connection, parts: Sequence[int] | None = None) -> ServerFacts:
    """Read the server's names and which parts of the guide it has (or use ``parts`` as given)."""
    from mailkit.guide.part3 import Part3

    versions = gather(conn, [PackageVersion(p) for p in SERVICES])
    packages = dict(zip(SERVICES, versions, strict=True))
    if not packages["postfix"]:
        return ServerFacts("", [], [], packages, "", "", None)
    names = [
        "myhostname",
        "mydomain",
        "virtual_mailbox_domains",
        "smtpd_tls_cert_file",
        "smtpd_tls_key_file",
        "relayhost",
    ]
    values = conn.run(["postconf", "-xh", *names]).stdout.split("\n")
    hostname, mydomain, virtual, cert, key, relayhost = (values + [""] * 6)[:6]
    domains = list(dict.fromkeys([mydomain, *[d for d in re.split(r"[,\s]+", virtual) if d]]))
    smtp = conn.run(["postconf", "-M", "smtp/inet"], check=False).stdout
    signing = conn.run(["cat", DKIM_SIGNING], check=False)
    found = re.search(r'selector\s*=\s*"([a-z0-9-]+)"', signing.stdout) if signing.ok else None
    selector = found[1] if found else None
    if parts is None:
        parts = [1]
        parts += [2] if packages["dovecot-core"] else []
        parts += [3] if packages["rspamd"] and selector else []
        parts += [4] if "postscreen" in smtp else []
    facts = ServerFacts(hostname, domains, list(parts), packages, cert, key, selector, relayhost=relayhost.strip())
    if selector and 3 in facts.parts:
        facts.public_keys = Part3(facts.part1(), selector).public_keys(conn)
    return facts


def service_rows(conn: Connection, facts: ServerFacts) -> list[Row]:
    installed = [p for p, v in facts.packages.items() if v]
    units = [UNITS.get(p, p) for p in installed]
    states = conn.run(["systemctl", "is-active", *units], check=False).stdout.split()
    rows = []
    for package, unit, state in zip(installed, units, states, strict=False):
        rows.append(
            Row(
                "services",
                f"{unit} running",
                state == "active",
                state,
                f"systemctl start {unit}; then journalctl -u '{unit}*' says why it stopped",
                part=SERVICES[package],
            )
        )
    return rows


def guide_resources(
    facts: ServerFacts, offline: bool, blocklists: Sequence[str], conn: Connection
) -> dict[int, list[Resource]]:
    """What the guide applies for these parameters, by part: main.cf and master.cf merged (a later part's value
    wins, as on the server), dovecot.conf, rspamd's signing files. Maps, passwords and keys are left out."""
    from mailkit.guide.part2 import Part2
    from mailkit.guide.part3 import Part3
    from mailkit.guide.part4 import Part4

    part1 = facts.part1()
    part2 = Part2(part1, cert_file=facts.cert_file or "", key_file=facts.key_file or "")
    part3 = Part3(part1, facts.selector or "s202611", offline=offline)
    part4 = Part4(part3, part2, tuple(blocklists), offline=offline)
    applied = sorted({1, *facts.parts})  # part 1 is what every server has
    return chapters.drift(Parts(part1, part2, part3, part4), applied, conn, facts.relayhost)


def drift_rows(conn: Connection, facts: ServerFacts, offline: bool, blocklists: Sequence[str]) -> list[Row]:
    """The server's main.cf, master.cf, dovecot.conf and rspamd files against what the guide renders (a diff)."""
    from mailkit.core.engine import plan

    by_part = guide_resources(facts, offline, blocklists, conn)
    settings: dict[str, str | None] = {}
    masters: dict[tuple[str, str], MasterService] = {}
    files: dict[int, list[Resource]] = {}
    for part, resources in by_part.items():
        for r in resources:
            if isinstance(r, Postconf):
                settings.update(r.settings)
            elif isinstance(r, MasterService):
                masters[(r.name, r.type)] = r
            elif isinstance(r, File):
                files.setdefault(part, []).append(r)
    postfix = [Postconf(settings), *masters.values()]
    checked = [*postfix, *(r for group in files.values() for r in group)]
    pending = plan(conn, checked).changes  # one round trip for every file and setting

    def changes_of(resources: Sequence[Resource]) -> list[Change]:
        return [c for c in pending if any(c.resource is r for r in resources)]

    changes = changes_of(postfix)
    rows = [
        Row(
            "drift",
            "main.cf and master.cf as the guide renders them",
            not changes,
            "; ".join(c.summary for c in changes) or f"{len(settings)} settings, {len(masters)} services as rendered",
            "put the guide's value back (run the part's notebook again), or keep yours knowingly",
            part=1,
            diff="".join(c.diff for c in changes),
        )
    ]
    for part, resources in sorted(files.items()):
        changes = changes_of(resources)
        paths = ", ".join(sorted({str(r.path) for r in resources if isinstance(r, File)}))
        rows.append(
            Row(
                "drift",
                f"{'dovecot.conf' if part == 2 else 'rspamd local.d'} as the guide renders it",
                not changes,
                "; ".join(c.summary for c in changes) or f"as rendered ({len(resources)} files)",
                f"run part {part}'s notebook again ({paths})",
                part=part,
                diff="".join(c.diff for c in changes),
            )
        )
    return rows


def certificate_rows(conn: Connection, facts: ServerFacts) -> list[Row]:
    if 2 not in facts.parts or not facts.cert_file:
        return []
    state = CertificateOnHost(facts.cert_file, facts.key_file).get(conn)
    problems = state.problems(facts.hostname)
    seen = "; ".join(problems) or f"for {facts.hostname}, more than {MIN_DAYS_LEFT} days left, key matches (mode 600)"
    return [
        Row(
            "certificate",
            f"certificate {facts.cert_file}",
            not problems,
            seen,
            "02-dovecot.ipynb section 3: renew it (certbot renew), then reload postfix and dovecot",
            part=2,
        )
    ]


def parse_df(text: str) -> tuple[int, int]:
    """(space used %, inodes used %) from ``df --output=pcent,ipcent`` (a file system without inodes says 0)."""
    numbers = [int(n) if n.isdigit() else 0 for n in re.findall(r"(\d+|-)%?", text.splitlines()[-1])]
    padded = [*numbers, 0, 0]
    return padded[0], padded[1]


def space_rows(conn: Connection) -> list[Row]:
    rows = []
    for path in (LAYOUT.vmail_base, "/var/spool/postfix"):
        seen = conn.run(["df", "--output=pcent,ipcent", path], check=False)
        if not seen.ok:
            continue
        space, inodes = parse_df(seen.stdout)
        ok = space < FULL_PERCENT and inodes < FULL_PERCENT
        rows.append(
            Row(
                "space",
                f"space under {path}",
                ok,
                f"{space}% of the space, {inodes}% of the inodes used",
                f"free space under {path} (du -sh {path}/*); mail stops near 100 %",
                part=0,
            )
        )
    return rows


def queue_rows(queue: MailQueue) -> list[Row]:
    """The queue, as read once for every row that needs it (:func:`inside_rows`)."""
    return [
        Row(
            "queue",
            "mail queue",
            queue.ok and len(queue.messages) <= QUEUE_LIMIT,
            f"{len(queue.messages)} messages ({queue.deferred} deferred)" if queue.ok else shorten(queue.error),
            "postqueue -p lists them; journalctl -u 'postfix*' says why they wait",
            part=1,
        )
    ]


def count_updates(text: str) -> tuple[int, int]:
    """(pending upgrades, of which security updates) from ``apt-get -s upgrade``."""
    lines = [line for line in text.splitlines() if line.startswith("Inst ")]
    return len(lines), sum(1 for line in lines if "security" in line.lower())


def update_rows(conn: Connection) -> list[Row]:
    lists = "stat -c %Y /var/lib/apt/lists/*Release 2>/dev/null"
    script = f"date +now%s; apt-get -s -o Debug::NoLocking=true upgrade; echo; {lists}"  # one round trip
    seen = conn.run(["sh", "-c", script], check=False)
    pending, security = count_updates(seen.stdout)
    stamps = [int(n) for n in re.findall(r"^(\d{9,})$", seen.stdout, re.M)]
    clock = re.search(r"^now(\d+)$", seen.stdout, re.M)
    if clock is None:
        raise MailkitError(f"the server did not say its time: {seen.stdout[:200]!r}")
    now = int(clock[1])
    age = f"package lists {(now - max(stamps)) // 86400} days old" if stamps else "no package lists: run apt update"
    return [
        Row(
            "updates",
            "security updates pending",
            security == 0,
            f"{security} security, {pending} in all ({age})",
            "apt update && apt upgrade (or install unattended-upgrades)",
            part=0,
        )
    ]


def outbound_rows(conn: Connection, exchanger: str, relayhost: str = "", queue: MailQueue | None = None) -> list[Row]:
    """The server can reach the next hop of its mail: another mail server on port 25 (many providers block it on
    new accounts), or, when it sends through a relay, the relay; then whether the relay takes its login (what the
    mail waiting in ``queue`` says; read from the server when not given)."""
    if not relayhost:
        seen = rules.outbound_open(exchanger, 25, greeting(conn, exchanger, 25))
        fix = f"{P3} section 8: ask your provider to unblock outgoing port 25, or send through a relay"
        return [Row("outbound", "outbound SMTP (port 25) not blocked", seen.ok, seen.detail, fix, part=3)]
    host, port = smarthost.destination_parts(relayhost)
    seen = rules.outbound_open(host, port, greeting(conn, host, port))
    login = rules.relay_login((queue or read_queue(conn)).delay_reasons)
    fix = f"{P3} section 8: the relay's name and port in relayhost, its login in {smarthost.SASL_PASSWORDS}"
    return [
        Row("outbound", f"the relay {relayhost} answers", seen.ok, seen.detail, fix, part=3),
        Row("outbound", "the relay accepts the server's login", login.ok, login.detail, fix, part=3),
    ]


def ssh_rows(conn: Connection) -> list[Row]:
    seen = conn.run(["sshd", "-T"], check=False).stdout.lower()
    settings = dict(line.split(" ", 1) for line in seen.splitlines() if " " in line)
    password = settings.get("passwordauthentication", "?")
    keyboard = settings.get("kbdinteractiveauthentication", settings.get("challengeresponseauthentication", "no"))
    ok = password == "no" and keyboard == "no"
    return [
        Row(
            "ssh",
            "SSH password logins off",
            ok,
            f"PasswordAuthentication {password}, KbdInteractive {keyboard}",
            "PasswordAuthentication no in /etc/ssh/sshd_config.d/, then systemctl reload ssh",
            part=0,
        )
    ]


def guessing_rows(conn: Connection) -> list[Row]:
    """Part 4's ban on password guessers: fail2ban runs its jails, and the addresses it bans now."""
    bans = read_bans(conn, JAILS)
    running, banned = rules.guessers_banned(bans, JAILS), rules.banned_now(bans)
    fix = f"{SECTION}: 'fail2ban-client status' on the server says what runs"
    return [
        Row("guessing", "password guessers banned (fail2ban)", running.ok, running.detail, fix, part=4),
        Row("guessing", "addresses banned now", banned.ok, banned.detail, fix, part=4),
    ]


def backup_rows(conn: Connection) -> list[Row]:
    """The backups chapter's nightly backup, where it is set up: the timer, the last run's result and its age, as
    systemd remembers them (the archives themselves are the backup host's: the chapter's own check reads them)."""
    runs = read_backup_runs(conn)
    if not runs.installed:
        return []
    section = f"{backups.GUIDE} section 4"
    rows = [Row(r.group, r.name, r.ok, r.detail, r.fix, part=7) for r in backups.run_rows(runs, section)]
    failed = runs.result != "success"
    age = rules.backup_age(None if failed or runs.seconds_ago is None else runs.seconds_ago / 3600, failed)
    fix = f"{section}: systemctl list-timers {UNIT}.timer; journalctl -u {UNIT}.service"
    return [*rows, Row("backup", "the last backup is less than a day old", age.ok, age.detail, fix, part=7)]


def read_reports(conn: Connection, facts: ServerFacts) -> dict[str, list[bytes] | str]:
    """Each domain's DMARC report messages on the server (a string: why they could not be read), for part 3."""
    if 3 not in facts.parts or not facts.domains:
        return {}
    try:
        return dict(read_report_messages(conn, facts.domains))
    except MailkitError as exc:
        return {domain: shorten(str(exc), 120) for domain in facts.domains}


#: What to do when a sender's TLS failed: the failure type says which (``tlsa``: section 13's DANE, ``sts``: 14's).
TLS_REPORT_FIX = (
    f"{P3}: read them (mailkit reports); a 'tlsa' failure: section 13 (the TLSA records and the served key), "
    "an 'sts' one: section 14 (the policy and its host)"
)


def report_rows(messages: dict[str, list[bytes] | str], addresses: dict[str, list[str]]) -> list[Row]:
    """What the receivers' DMARC reports of the last days say of the server's own mail (:func:`rules.own_mail_passes`),
    and their TLS-RPT reports of senders' TLS (:func:`rules.senders_reach_over_tls`); other senders that failed DMARC,
    and senders whose TLS failed, are named in the rows."""
    rows = []
    for domain, got in messages.items():
        name = f"DMARC reports of {domain} say your mail passes"
        tls_name = f"TLS-RPT reports of {domain} say senders reach you over TLS"
        fix = f"{P3} section 5: read them (mailkit reports), then see sections 3 and 4 for the failing check"
        if isinstance(got, str):
            where = f"the Maildirs under {LAYOUT.vmail_base}"
            rows += [Row(group, row, False, f"cannot tell: {got}", where, part=3)
                     for group, row in (("dmarc", name), ("tls-rpt", tls_name))]  # fmt: skip
            continue
        found: list[Report] = []
        refused = 0
        for raw in got:
            try:
                found += reports_in_message(raw)
            except ReportRefused:
                refused += 1
        dmarc = [r for r in found if isinstance(r, DmarcReport) and r.domain == domain]
        seen = rules.own_mail_passes(sources(dmarc, [*addresses["4"], *addresses["6"]]), len(dmarc))
        detail = seen.detail + (f"; {refused} message(s) not readable as reports" if refused else "")
        rows.append(Row("dmarc", name, seen.ok, detail, fix, part=3))
        tls = rules.senders_reach_over_tls([r for r in found if isinstance(r, TlsReport)])
        rows.append(Row("tls-rpt", tls_name, tls.ok, tls.detail, TLS_REPORT_FIX, part=3))
    return rows


def inside_rows(
    conn: Connection, facts: ServerFacts, offline: bool, blocklists: Sequence[str], exchanger: str
) -> list[Row]:
    """Every inside row, for the parts the server has; ``exchanger`` is another mail server to reach on port 25."""
    if not facts.packages.get("postfix"):
        return [Row("services", "postfix installed", False, "not installed", "01-postfix.ipynb section 1", part=1)]
    queue = read_queue(conn)  # once: the queue row and the relay's login both read it
    return [
        *service_rows(conn, facts),
        *drift_rows(conn, facts, offline, blocklists),
        *certificate_rows(conn, facts),
        *space_rows(conn),
        *queue_rows(queue),
        *(outbound_rows(conn, exchanger, facts.relayhost, queue) if 3 in facts.parts or facts.relayhost else []),
        *update_rows(conn),
        *ssh_rows(conn),
        *(guessing_rows(conn) if 4 in facts.parts else []),
        *backup_rows(conn),
    ]
