"""Part 4, section 9: password guessers banned with fail2ban, which reads the journal and has nftables refuse them.

Why fail2ban and not nftables meters: a meter counts connections, not wrong passwords; mail programs open several
IMAP connections at once and reconnect often, while a guesser may try many passwords on one SMTP connection.
fail2ban counts what the services log as a failed login, per address, and Dovecot's own penalty (each failure from
an address delays its next login, up to 15 s) slows a guesser down until then.

The ports banned come from the guide's registry of what each part serves (:data:`mailkit.guide.chapters.PORTS`);
SSH is Debian's own ``sshd`` jail's.

>>> ban_settings(["198.51.100.100", "2001:db8:100::/64"], "1h", "10m", 5).never_ban
('198.51.100.100', '2001:db8:100::/64')
>>> ban_settings(["mail.example.org"], "1h", "10m", 5)
Traceback (most recent call last):
...
mailkit.core.values.ValueRejected: NEVER_BAN: 'mail.example.org' is not an IP address or network
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from mailkit.clients.logins import TURNED_AWAY, try_logins
from mailkit.clients.remote_client import run_clients
from mailkit.core.checks import CheckResult, CheckTable, skipped
from mailkit.core.resources import File, Packages, Resource
from mailkit.core.ssh import Connection
from mailkit.core.templates import Templates
from mailkit.core.values import ValueRejected
from mailkit.guide.chapters import PORTS
from mailkit.guide.parts import Parts
from mailkit.server import rules
from mailkit.server.bans import read_bans, wait_for_ban
from mailkit.server.target import Target

GUIDE = "04-spam-inbound.ipynb"
SECTION = f"{GUIDE} section 9"
JAIL_FILE = "/etc/fail2ban/jail.d/mail.conf"
DOVECOT_FILTER = "/etc/fail2ban/filter.d/dovecot.local"
#: The jails the guide turns on: failed SMTP AUTH (Postfix's log) and failed IMAP/ManageSieve logins (Dovecot's).
JAILS = ("postfix-sasl", "dovecot")
#: fail2ban checks its whole configuration with a candidate jail file in a copy of /etc/fail2ban.
CHECK_JAILS = r"""set -eu
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
cp -a /etc/fail2ban/. "$dir"/
cp -- "$1" "$dir/jail.d/mail.conf"
fail2ban-client --conf "$dir" --test >/dev/null"""
#: What section 9 installs (python3-systemd: fail2ban reads the journal).
PACKAGES = ("fail2ban", "python3-systemd")
_DURATION = re.compile(r"[1-9][0-9]{0,6}[smhdw]?")


@dataclass(frozen=True)
class BanSettings:
    """How guessing is judged: ``maxretry`` failures within ``findtime`` ban an address for ``bantime``;
    ``never_ban`` are the addresses or networks you check and administer the server from."""

    never_ban: tuple[str, ...]
    bantime: str
    findtime: str
    maxretry: int


def ban_settings(never_ban: Sequence[str], bantime: str, findtime: str, maxretry: int) -> BanSettings:
    """The settings, validated before anything reaches the jail file."""
    addresses = []
    for entry in never_ban:
        try:
            addresses.append(str(ipaddress.ip_network(str(entry), strict=False)) if "/" in str(entry) else
                             str(ipaddress.ip_address(str(entry))))  # fmt: skip
        except ValueError:
            raise ValueRejected("NEVER_BAN", entry, "is not an IP address or network") from None
    for name, value in (("BAN_TIME", bantime), ("FIND_TIME", findtime)):
        if not isinstance(value, str) or not _DURATION.fullmatch(value):
            raise ValueRejected(name, value, "must be a duration like 600, 10m, 1h or 1d")
    if isinstance(maxretry, bool) or not isinstance(maxretry, int) or not 1 <= maxretry <= 100:
        raise ValueRejected("MAX_RETRY", maxretry, "must be a number of failed logins from 1 to 100")
    return BanSettings(tuple(addresses), bantime, findtime, maxretry)


def mail_ports() -> str:
    """The ports a guesser is banned from: every port the parts serve (SSH has its own jail).

    >>> mail_ports()
    '25,143,443,465,587,993,4190'
    """
    return ",".join(str(port) for port in sorted(PORTS))


def ban_guessers(settings: BanSettings) -> list[Resource]:
    """fail2ban from Debian, its Dovecot filter taught Dovecot 2.4's log line, and the jails for the mail ports."""
    templates = Templates()
    context = {
        "never_ban": settings.never_ban,
        "bantime": settings.bantime,
        "findtime": settings.findtime,
        "maxretry": settings.maxretry,
        "ports": mail_ports(),
    }
    return [
        Packages(PACKAGES),
        File(DOVECOT_FILTER, templates.render("fail2ban/dovecot.local", {}), service="fail2ban"),
        File(
            JAIL_FILE,
            templates.render("fail2ban/mail.conf", context),
            service="fail2ban",
            check=("sh", "-c", CHECK_JAILS, "sh", "{candidate}"),
        ),
    ]


def journal_matches(text: str) -> list[str] | None:
    """The journal matches a jail reads (``fail2ban-client get JAIL journalmatch``) as ``journalctl`` arguments,
    or None when the answer is not a list of ``FIELD=value`` terms and ``+`` (journalctl's "or").

    >>> journal_matches("Current match filter:\\n_SYSTEMD_UNIT=postfix.service _SYSTEMD_UNIT=postfix@-.service")
    ['_SYSTEMD_UNIT=postfix.service', '_SYSTEMD_UNIT=postfix@-.service']
    >>> journal_matches("_SYSTEMD_UNIT=ssh.service + _COMM=sshd"), journal_matches("--since=-1y")
    (['_SYSTEMD_UNIT=ssh.service', '+', '_COMM=sshd'], None)
    """
    kept = [line for line in text.splitlines() if not line.rstrip().endswith(":")]  # "Current match filter:"
    terms = [t for t in " ".join(kept).replace("`-", " ").replace("|-", " ").split() if t]
    if not terms or not all(t == "+" or re.fullmatch(r"[A-Z_][A-Z0-9_]{0,63}=[\w@.:/+-]{1,200}", t) for t in terms):
        return None
    return terms


def _journal_mark(mail: Connection) -> str:
    """The server's clock now, as journalctl's ``--since`` takes it ("@1796495895.123456"): lines logged later come
    after it. (A cursor would do on newer systemd; Debian 12's journalctl 252 skips the first matching line after
    a cursor when a match is given, found on bookworm.)"""
    now = mail.run(["date", "+%s.%6N"], check=False).stdout.strip()
    return f"@{now}" if re.fullmatch(r"\d{9,11}\.\d{6}", now) else ""


def _line_after(mail: Connection, mark: str, jail: str, pattern: str, seconds: float = 5) -> str:
    """The first line since ``mark`` that matches ``pattern`` in the journal as ``jail`` reads it (its own journal
    matches), waiting up to ``seconds`` for journald: a jail that looks at the wrong unit finds nothing here either,
    and a failure logged before the check (an older one) is never taken for the check's own."""
    asked = mail.run(["fail2ban-client", "get", jail, "journalmatch"], check=False)
    matches = journal_matches(asked.stdout) if asked.ok else None
    if matches is None or not mark:
        return ""
    argv = ["journalctl", "--no-pager", "-q", "-o", "short", "--since", mark, "-g", pattern, *matches]
    deadline = time.monotonic() + seconds
    while True:
        found = mail.run(argv, check=False)
        lines = [line for line in found.stdout.splitlines() if not line.startswith("-- ")]
        if lines or time.monotonic() >= deadline:
            return lines[0][:2000] if lines else ""
        time.sleep(0.3)


def _filter_sees(mail: Connection, line: str, filter_name: str) -> tuple[bool, str]:
    if not line:
        return False, "the failed login is not in the journal as the jail reads it"
    tested = mail.run(["fail2ban-regex", line, filter_name], check=False)
    matched = re.search(r"^Lines: \d+ lines, \d+ ignored, (\d+) matched", tested.stdout, re.MULTILINE)
    ok = bool(matched and int(matched[1]) == 1)
    address = re.search(r"rip=([0-9a-fA-F.:]+)|\[((?:\d{1,3}\.){3}\d{1,3}|[0-9a-fA-F]*:[0-9a-fA-F:]+)\]", line)
    seen = next((g for g in address.groups() if g), "?") if address else "?"
    return ok, f"the filter matches the failure from {seen}" if ok else "the filter does not match: " + line[-120:]


def jails_see_failures(guide: Parts, mail: Connection, outside: Connection) -> list[CheckResult]:
    """One wrong password each at IMAPS and at submission (at the same time), from the outside host over TLS; then
    the journal's line for each, found where the jail reads the journal and put through its filter
    (``fail2ban-regex``): the jail counts what the services log."""
    user = str(guide.part1.mailboxes[0])
    wrong = _wrong(1)[0]
    host = str(guide.part1.hostname)
    mark = _journal_mark(mail)
    run_clients(
        outside,
        [
            {"protocol": "imap", "host": host, "port": 993, "mode": "tls", "user": user, "password": wrong},
            {"protocol": "smtp", "host": host, "port": 587, "mode": "starttls", "user": user, "password": wrong},
        ],
    )
    imap_line = _line_after(mail, mark, "dovecot", "auth failed")
    smtp_line = _line_after(mail, mark, "postfix-sasl", "SASL [A-Z0-9-]+ authentication failed")
    results = []
    for jail, what, line in (("dovecot", "IMAP", imap_line), ("postfix-sasl", "SMTP AUTH", smtp_line)):
        ok, detail = _filter_sees(mail, line, "dovecot" if jail == "dovecot" else "postfix[mode=auth]")
        results.append(CheckResult("guessing", f"jail {jail} sees a wrong {what} password", ok, detail, SECTION))
    return results


def guesser_banned(
    guide: Parts, outside: Connection, target: Target, settings: BanSettings, mail: Connection
) -> list[CheckResult]:
    """From the target's guesser address: wrong passwords until the connection is refused; meanwhile a user
    from another address logs in; then the ban is lifted by hand and the guesser's address gets in again."""
    guessers = target.guessers
    if guessers is None:
        reason = "needs two addresses on the outside host; by hand: 'fail2ban-client status dovecot' after guessing"
        return [skipped("guessing", "a password guesser is banned", reason)]
    user = str(guide.part1.mailboxes[0])
    password = guide.part2.passwords[user].reveal()
    host = str(guide.part1.hostname)
    wave = try_logins(outside, host, "imaps", user, _wrong(settings.maxretry), guessers.guesser, at_once=True)
    failed = sum(a.outcome == "failed" for a in wave)
    reaction = wait_for_ban(mail, JAILS, guessers.guesser)
    then = try_logins(outside, host, "imaps", user, _wrong(1), guessers.guesser)[-1].outcome
    banned = failed >= settings.maxretry and reaction is not None and then in TURNED_AWAY
    when = f"banned {reaction:.1f} s later" if reaction is not None else "not banned within 30 s"
    detail = f"{failed} wrong passwords at once, {when}; the next connection: {then}"
    other = try_logins(outside, host, "imaps", user, [password], guessers.user)
    mail.run(["fail2ban-client", "unban", guessers.guesser], check=False)
    back = try_logins(outside, host, "imaps", user, [password], guessers.guesser)
    return [
        CheckResult("guessing", f"a guesser at {guessers.guesser} is refused", banned, detail, SECTION),
        CheckResult(
            "guessing",
            f"a user at {guessers.user} logs in meanwhile",
            other[-1].outcome == "ok",
            other[-1].outcome,
            SECTION,
        ),
        CheckResult(
            "guessing",
            f"after 'fail2ban-client unban {guessers.guesser}' it logs in",
            back[-1].outcome == "ok",
            back[-1].outcome,
            SECTION,
        ),
    ]


def _wrong(count: int) -> list[str]:
    return [secrets.token_urlsafe(12) + "-wrong" for _ in range(count)]


def verify(guide: Parts, mail: Connection, outside: Connection, target: Target, settings: BanSettings) -> CheckTable:
    """fail2ban runs the jails; each jail sees a wrong password; where the target has a spare address, a guesser
    is refused while a user elsewhere is not."""
    status = rules.guessers_banned(read_bans(mail, JAILS), JAILS)
    results = [CheckResult("guessing", f"fail2ban runs {', '.join(JAILS)}", status.ok, status.detail, SECTION)]
    results += jails_see_failures(guide, mail, outside)
    results += guesser_banned(guide, outside, target, settings, mail)
    return CheckTable(results)
