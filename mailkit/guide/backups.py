"""Chapter 7, backups: borg from Debian, encrypted on the server, sent over SSH to another machine that only
lets this server *add* archives (``borg serve --append-only``), every night by a systemd timer.

Why borg and not restic: both are in Debian and both encrypt and deduplicate; only borg has an append-only mode
that needs nothing on the backup host but ``borg`` and an ``authorized_keys`` line (restic needs its
rest-server there, another service with its own TLS and passwords). Storage boxes offer borg over SSH for this.

What is kept (:data:`BACKED_UP`): the Maildirs, the flat files (passwd-file, Postfix's maps), the Postfix,
Dovecot, rspamd, fail2ban and nftables configuration, the DKIM keys, the certificate, and rspamd's Bayes data
dumped through Redis/Valkey (never its live file copied).

Secrets are made on the server and never leave it: its SSH key for the backup host and the repository's
passphrase. Only the public key is read back, to be put at the backup host.

>>> [r.path for r in install(_space())[1:5]]  # type: ignore[attr-defined]  # doctest: +NORMALIZE_WHITESPACE
['/etc/mailkit/backup', '/etc/mailkit/backup/known_hosts', '/etc/mailkit/backup/id_ed25519',
 '/etc/mailkit/backup/passphrase']
>>> newest_archive('[{"name": "mail-2026-12-06T03:15:00", "time": "2026-12-06T03:15:01.000000"}]')
('mail-2026-12-06T03:15:00', '2026-12-06T03:15:01.000000')
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from pathlib import PurePosixPath

from mailkit.core.checks import CheckResult, CheckTable
from mailkit.core.errors import MailkitError
from mailkit.core.mail_layout import LAYOUT
from mailkit.core.resources import Directory, File, GeneratedSecret, Packages, Resource
from mailkit.core.services import Service, register
from mailkit.core.ssh import Connection
from mailkit.core.templates import Templates
from mailkit.core.values import EmailAddress, Hostname, Password, ValueRejected
from mailkit.guide.part3 import DKIM_DIR
from mailkit.guide.part4 import LEARN_DIR, PIPE_DIR
from mailkit.server import rules
from mailkit.server.backup_runs import UNIT, BackupRuns, read_backup_runs
from mailkit.server.backup_space import BackupSpace

GUIDE = "07-backups.ipynb"
PACKAGES = ("borgbackup",)
DIR = "/etc/mailkit/backup"
KEY = f"{DIR}/id_ed25519"
PASSPHRASE = f"{DIR}/passphrase"
KNOWN_HOSTS = f"{DIR}/known_hosts"
#: borg's settings (repository, ssh, passphrase command) for the timer and for a person at the shell:
#: ``set -a; . /etc/mailkit/backup/borg.env; set +a; borg list``.
ENV_FILE = f"{DIR}/borg.env"
SCRIPT = "/usr/local/sbin/mailkit-backup"
SERVICE_FILE = f"/etc/systemd/system/{UNIT}.service"
TIMER_FILE = f"/etc/systemd/system/{UNIT}.timer"
#: Consistent dumps of what must not be copied live (Redis/Valkey's data), kept in the archive.
DUMPS = "/var/backups/mailkit"
#: What every archive holds, and why.
BACKED_UP: dict[str, str] = {
    LAYOUT.vmail_base: "the Maildirs: every message, folder and flag, and each user's Sieve scripts",
    "/etc/postfix": "main.cf, master.cf and the maps (mailboxes, aliases, sender logins, relay login)",
    "/etc/dovecot": f"Dovecot's configuration and the passwd-file {LAYOUT.passwd_file}",
    "/etc/rspamd": f"rspamd's configuration and the DKIM keys in {DKIM_DIR} (the published key stays right)",
    "/etc/ssl/certs": "the server's certificate (a lab or bought one)",
    "/etc/ssl/private": "its private key",
    "/etc/letsencrypt": "certbot's account, certificates and renewal settings",
    "/etc/fail2ban": "the jails against password guessers",
    "/etc/unbound": "the server's validating resolver (part 3 section 13: DANE), with its trust anchor",
    "/etc/default/unbound": "how Unbound starts (in a DNS world of its own: without fetching IANA's key)",
    "/etc/resolv.conf": "which resolver the server asks: its own Unbound since section 13",
    "/etc/nginx": "the web server's configuration, which serves the MTA-STS policies",
    "/var/www/mta-sts": "each domain's MTA-STS policy",
    "/etc/nftables.conf": "the firewall",
    "/etc/mailname": "the name the server gives itself in mail",
    "/etc/aliases": "where mail to root goes",
    "/etc/mailkit": "mailkit's own settings, this backup's among them",
    "/var/lib/mailkit": "what mailkit remembers (a finished move, for one)",
    DUMPS: "rspamd's Bayes data, dumped through Redis/Valkey",
    # The directory above the program, so that it comes back with its mode (borg makes a missing parent 0700).
    str(PurePosixPath(PIPE_DIR).parent): "the program Sieve hands messages to for learning, in its directory",
    LEARN_DIR: "the directory of rspamd's learning socket, with its owner and mode (the socket itself is not kept)",
}
#: How long borg may talk to the backup host in a check or a listing.
BORG_SECONDS = 300
#: The most archives and files a listing reads back (the backup host's answer is believed only so far).
MAX_ARCHIVES = 10_000
MAX_LISTED = 2_000_000
_ARCHIVE = re.compile(r"[A-Za-z0-9._:-]{1,200}")

# systemd reads changed unit files only when told to (daemon-reload); the timer is enabled so it survives a boot.
register(
    Service.of_steps(
        UNIT,
        f"{UNIT}.timer",
        ("systemctl daemon-reload", f"systemctl enable --quiet --now {UNIT}.timer"),
        ("systemctl daemon-reload", f"systemctl enable --quiet {UNIT}.timer", f"systemctl restart {UNIT}.timer"),
    )
)


def _space() -> BackupSpace:
    """The lab's backup space, for the examples."""
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIClnkdY0ORW99nEM6kMP/5ZtzYiwdyTakgs3wzLbZEh3"
    return BackupSpace(Hostname("backup.example.net"), "borg", "mail.example.org", key)


def borg_env(space: BackupSpace) -> str:
    """The environment borg runs with: the repository, ssh with the server's key and the pinned host key only,
    the passphrase read from its root-only file when needed (never in the environment itself).

    >>> print(borg_env(_space()))  # doctest: +ELLIPSIS
    BORG_REPO=ssh://borg@backup.example.net/./mail.example.org
    BORG_RSH='ssh -i /etc/mailkit/backup/id_ed25519 -o IdentitiesOnly=yes ... -o StrictHostKeyChecking=yes ...'
    BORG_PASSCOMMAND='cat /etc/mailkit/backup/passphrase'
    <BLANKLINE>
    """
    rsh = shlex.join(
        [
            "ssh", "-i", KEY, "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={KNOWN_HOSTS}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=30",
        ]
    )  # fmt: skip
    lines = {"BORG_REPO": space.repository, "BORG_RSH": rsh, "BORG_PASSCOMMAND": f"cat {PASSPHRASE}"}
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in lines.items())


def calendar_time(on_calendar: str) -> str:
    """``BACKUP_AT`` as the timer's ``OnCalendar=`` takes it: a calendar time or a word, nothing else.

    >>> calendar_time("daily")
    'daily'
    >>> calendar_time("daily; ExecStart=/bin/sh")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mailkit.core.values.ValueRejected: BACKUP_AT: ... must be a systemd calendar time like '*-*-* 03:15:00' or 'daily'
    """
    if not isinstance(on_calendar, str) or not re.fullmatch(r"[0-9*:/ ,.-]{1,60}|daily|hourly|weekly", on_calendar):
        raise ValueRejected(
            "BACKUP_AT", on_calendar, "must be a systemd calendar time like '*-*-* 03:15:00' or 'daily'"
        )
    return on_calendar


def install(
    space: BackupSpace, on_calendar: str = "*-*-* 03:15:00", passphrase: Password | None = None
) -> list[Resource]:
    """borg, the backup host's pinned key, the server's SSH key and passphrase (made here), borg's settings, the
    backup script and its nightly timer. ``passphrase``: on a server rebuilt after a loss, the repository's
    passphrase as you kept it (written to its root-only file, never shown); the SSH key is always a new one."""
    calendar_time(on_calendar)
    templates = Templates()
    context = {
        "env_file": ENV_FILE,
        "dumps": DUMPS,
        "paths": " ".join(shlex.quote(path) for path in BACKED_UP),
        "script": SCRIPT,
        "repository_host": str(space.host),
        "on_calendar": on_calendar,
    }
    return [
        Packages(PACKAGES),
        Directory(DIR, mode=0o700),
        File(KNOWN_HOSTS, (space.known_hosts_line() + "\n").encode(), summary=f"the key of {space.host}, pinned"),
        GeneratedSecret(
            KEY,
            recipe='rm -f -- "$out" && ssh-keygen -q -t ed25519 -N "" -C mailkit-backup -f "$out"\nrm -f -- "$out.pub"',
            what="the server's SSH key for the backup host",
            typed=(shlex.join(["ssh-keygen", "-t", "ed25519", "-N", "", "-C", "mailkit-backup", "-f", KEY]),),
        ),
        GeneratedSecret(
            PASSPHRASE,
            recipe="openssl rand -base64 33 | tr -d '\\n' > \"$out\"",
            what="the repository's passphrase",
        )
        if passphrase is None
        else File(PASSPHRASE, passphrase.reveal().encode(), mode=0o600, secret=True, summary="the kept passphrase"),
        File(ENV_FILE, borg_env(space).encode(), mode=0o600),
        File(SCRIPT, templates.render("backup/mailkit-backup", context).encode(), mode=0o755),
        File(SERVICE_FILE, templates.render("backup/mailkit-backup.service", context).encode(), service=UNIT),
        File(TIMER_FILE, templates.render("backup/mailkit-backup.timer", context).encode(), service=UNIT),
    ]


def public_key(mail: Connection) -> str:
    """The public half of the server's backup key (``ssh-keygen -y``): what the backup host is given."""
    found = mail.run(["ssh-keygen", "-y", "-f", KEY], check=False, timeout=30)
    if not found.ok:
        raise MailkitError(f"no backup key on the server yet ({KEY}): apply install() first", found)
    return found.stdout.strip()


def authorization(mail: Connection, space: BackupSpace, hostname: str) -> str:
    """The ``authorized_keys`` line for the backup host: the server's key, append-only, one repository."""
    return space.authorized_line(public_key(mail), f"mailkit-backup@{hostname}")


def borg(mail: Connection, *args: str, timeout: float = BORG_SECONDS) -> tuple[int, str, str]:
    """``borg ARGS`` on the server with the settings of :data:`ENV_FILE`: exit code, output, errors."""
    script = f'set -a; . {ENV_FILE}; set +a; exec borg "$@"'
    done = mail.run(["sh", "-c", script, "sh", *args], check=False, timeout=timeout)
    return done.exited, done.stdout, done.stderr


def initialize(mail: Connection) -> str:
    """The repository on the backup host, encrypted with the server's passphrase (``repokey-blake2``: the key in
    the repository, useless without the passphrase); "no change" when it is there. A backup host that refuses the
    key or a wrong host key is an error, never taken for a missing repository."""
    code, _, said = borg(mail, "info")  # not --json: with it, borg leaves out what ssh said
    if code == 0:
        return "the repository is there: no change"
    if "does not exist" not in said:
        raise MailkitError(f"borg cannot reach the repository: {_why_failed(mail, said)}")
    code, _, said = borg(mail, "init", "--encryption=repokey-blake2")
    if code != 0:
        raise MailkitError(f"borg init failed: {_last_lines(said)}")
    return "the repository is made, encrypted (repokey-blake2) with the server's passphrase"


def back_up_now(mail: Connection) -> str:
    """One backup now, as the timer starts it (``systemctl start``: its result is what the check reads)."""
    done = mail.run(["systemctl", "start", f"{UNIT}.service"], check=False, timeout=3600)
    if not done.ok:  # what this run logged (its invocation's lines only): ssh's or borg's reason among it
        run = mail.run(["systemctl", "show", "-p", "InvocationID", "--value", f"{UNIT}.service"], check=False)
        invocation = run.stdout.strip() if re.fullmatch(r"[0-9a-f]{32}", run.stdout.strip()) else "none"
        log = mail.run(["journalctl", f"_SYSTEMD_INVOCATION_ID={invocation}", "--no-pager", "-o", "cat"], check=False)
        raise MailkitError(f"the backup failed: {_why_failed(mail, log.stdout)}", done)
    count = len(archives(borg(mail, "list", "--json")[1]))
    return f"{count} archive{'s' if count != 1 else ''} in the repository, the newest made just now"


def archives(listing: str) -> list[tuple[str, str]]:
    """Each archive's name and time in ``borg list --json``, oldest first, read as hostile: bounded, names and
    times of the shapes borg makes, at least one archive.

    >>> archives('{"archives": [{"name": "a", "time": "2026-12-06T03:15:01"}, {"name": "b;rm", "time": "x"}]}')
    Traceback (most recent call last):
    ...
    mailkit.core.errors.MailkitError: the repository lists an archive named 'b;rm' at 'x'
    """
    try:
        data = json.loads(listing[: 200 * MAX_ARCHIVES])
        found = data["archives"] if isinstance(data, dict) else data
        if not isinstance(found, list) or not found or len(found) > MAX_ARCHIVES:
            raise ValueError
        named = [(str(a["name"]), str(a["time"])) for a in found]
    except (ValueError, KeyError, TypeError):
        raise MailkitError(f"the repository lists no archive: {listing[:200]!r}") from None
    for name, when in named:
        if not _ARCHIVE.fullmatch(name) or not re.fullmatch(r"[0-9T:.-]{10,40}", when):
            raise MailkitError(f"the repository lists an archive named {name[:80]!r} at {when[:40]!r}")
    return sorted(named, key=lambda archive: archive[1])


def archive_name(name: str) -> str:
    """An archive's name as the backup script makes them (letters, digits, ``.``, ``_``, ``:``, ``-``).

    >>> archive_name("2026-12-06T03:15:00"), archive_name("--force")
    Traceback (most recent call last):
    ...
    mailkit.core.values.ValueRejected: archive: '--force' is not an archive name of this repository
    """
    if not _ARCHIVE.fullmatch(name) or name.startswith("-"):
        raise ValueRejected("archive", name, "is not an archive name of this repository")
    return name


def newest_archive(listing: str) -> tuple[str, str]:
    """The newest archive's name and time in ``borg list --json``."""
    return archives(listing)[-1]


def undo_after(transaction: int) -> str:
    """What the backup host's owner runs in the repository's directory (as its account, never with the server's
    key) to undo everything written after ``transaction`` (a line ``transaction N, UTC time ...`` of its
    ``transactions`` file, the last one before a break-in): the later segments and the index go, borg rebuilds
    the index from the segments left on its next use, and the deleted archives are listed again.

    >>> print(undo_after(9))  # doctest: +NORMALIZE_WHITESPACE
    for f in data/*/*; do n=${f##*/}; [ "$n" -gt 9 ] && rm -f -- "$f"; done
    rm -f -- index.* hints.* integrity.*
    """
    if isinstance(transaction, bool) or not isinstance(transaction, int) or transaction < 1:
        raise ValueRejected("transaction", transaction, "must be a transaction number from the transactions file")
    return (
        f'for f in data/*/*; do n=${{f##*/}}; [ "$n" -gt {transaction} ] && rm -f -- "$f"; done\n'
        "rm -f -- index.* hints.* integrity.*"
    )


#: ssh alone, as borg calls it, to the repository's host: what ssh says when it cannot get in (borg's own message
#: is "Connection closed by remote host", ssh's reason only sometimes relayed before it).
_SSH_ONLY = f"""set -a; . {ENV_FILE}; set +a
rest=${{BORG_REPO#ssh://}}; at=${{rest%%/*}}; port=22
case $at in *:*) port=${{at##*:}}; at=${{at%:*}} ;; esac
$BORG_RSH -p "$port" "$at" true </dev/null >/dev/null"""


def _ssh_reason(mail: Connection) -> str:
    """Why ssh cannot log in at the backup host (a changed host key, a key it does not take), or ""."""
    tried = mail.run(["sh", "-c", _SSH_ONLY], check=False, timeout=60)
    lines = [line.strip() for line in tried.stderr.splitlines() if line.strip()]
    return "" if tried.ok or not lines else lines[-1][:300]


def _why_failed(mail: Connection, said: str) -> str:
    """Why borg failed: ssh's own reason when ssh cannot get in (borg relays it only sometimes, and otherwise says
    "Connection closed by remote host"), else borg's last words."""
    return _ssh_reason(mail) or _last_lines(said)


def _last_lines(text: str, lines: int = 4) -> str:
    """What borg said, in one bounded line: what the other end said first (``Remote:`` lines: ssh's own reason,
    such as a host key that does not match), then borg's last words.

    >>> _last_lines("Remote: Host key verification failed.\\nConnection closed by remote host. Is borg working?")
    'Host key verification failed. | Connection closed by remote host. Is borg working?'
    """
    said = [line.strip() for line in text.strip().splitlines() if line.strip()]
    remote = [line.removeprefix("Remote:").strip() for line in said if line.startswith("Remote:")]
    rest = [line for line in said if not line.startswith("Remote:")]
    return " | ".join([*remote[-2:], *rest[-(lines - min(len(remote), 2)) :]])[:600]


def _age_hours(mail: Connection, when: str) -> float:
    """Hours since borg's archive time, on the server's clock (borg 1.x writes the server's local time, no zone)."""
    then = mail.run(["date", "-d", when, "+%s"], check=False).stdout.strip()
    now = mail.run(["date", "+%s"], check=False).stdout.strip()
    if not then.isdigit() or not now.isdigit():
        raise MailkitError(f"the server cannot read the archive time {when!r}")
    return (int(now) - int(then)) / 3600


def verify(mail: Connection, mailboxes: Sequence[str]) -> CheckTable:
    """The timer is on; the last backup succeeded and is recent; the newest archive holds every mailbox, the
    passwd-file, the DKIM keys and the certificate Postfix serves; a message in it is byte for byte the one on the
    server."""
    section = f"{GUIDE} section 4"
    results = run_rows(read_backup_runs(mail), section)
    code, listing, said = borg(mail, "list", "--json")
    if code != 0:
        results.append(CheckResult("backup", "the newest archive", False, _why_failed(mail, said), f"{section}"))
        return CheckTable(results)
    name, when = newest_archive(listing)
    age = rules.backup_age(_age_hours(mail, when))
    results.append(
        CheckResult(
            "backup", "the newest archive is less than a day old", age.ok, age.detail,
            f"{section}: systemctl list-timers {UNIT}.timer",
        )
    )  # fmt: skip
    certificate = mail.run(["postconf", "-h", "smtpd_tls_cert_file"], check=False).stdout.strip()
    results += _contents(mail, name, mailboxes, certificate or "(none: part 2 not applied)", section)
    return CheckTable(results)


def run_rows(runs: BackupRuns, section: str) -> list[CheckResult]:
    """The timer and the last run, as systemd remembers them (``mailkit check`` shows the same rows)."""
    timer = rules.backup_timer(runs.enabled, runs.active)
    result = rules.backup_result(runs.result, runs.status)
    return [
        CheckResult("backup", "a backup runs every night", timer.ok, timer.detail,
                    f"{section}: systemctl enable --now {UNIT}.timer"),
        CheckResult("backup", "the last backup succeeded", result.ok, result.detail, f"journalctl -u {UNIT}.service"),
    ]  # fmt: skip


def _contents(
    mail: Connection, archive: str, mailboxes: Sequence[str], certificate: str, section: str
) -> list[CheckResult]:
    """What the archive holds, listed by borg (bounded), and one message read back from it."""
    code, listing, said = borg(mail, "list", "--format", "{path}{NUL}", f"::{archive}")
    paths = set(listing.split("\0")[:MAX_LISTED]) if code == 0 else set()
    keys = [p for p in paths if p.startswith(DKIM_DIR.lstrip("/") + "/") and p.endswith(".key")]
    wanted = {
        f"every mailbox ({len(mailboxes)})": [LAYOUT.maildir(EmailAddress(m)).lstrip("/") for m in mailboxes],
        "the passwd-file": [LAYOUT.passwd_file.lstrip("/")],
        "the DKIM keys": keys[:1] or [DKIM_DIR.lstrip("/") + "/*.key"],
        "the certificate": [certificate.lstrip("/")],
    }
    results = []
    for what, needed in wanted.items():
        missing = [p for p in needed if p not in paths]
        results.append(
            CheckResult(
                "backup",
                f"the archive holds {what}",
                code == 0 and not missing,
                _last_lines(said) if code else (f"missing /{missing[0]}" if missing else "in the newest archive"),
                section,
            )
        )
    results.append(_one_message_back(mail, archive, paths, section))
    return results


def _one_message_back(mail: Connection, archive: str, paths: set[str], section: str) -> CheckResult:
    """The first message file of the archive that is still on the server, extracted to standard output and
    compared by SHA-256 with the file (Maildir files never change once written: only their names do)."""
    name = "a message comes back byte for byte"
    messages = sorted(p for p in paths if re.search(r"/(cur|new)/[^/]+$", p))
    for path in messages[:20]:
        here = mail.run(["sha256sum", "--", "/" + path], check=False)
        if not here.ok:
            continue  # moved or deleted since: the next one
        script = f'set -a; . {ENV_FILE}; set +a; set -o pipefail; borg extract --stdout "::$1" "$2" | sha256sum'
        back = mail.run(["bash", "-c", script, "bash", archive, path], check=False, timeout=BORG_SECONDS)
        ok = back.ok and back.stdout.split()[:1] == here.stdout.split()[:1]
        said = back.stderr if not back.ok else "different bytes"
        return CheckResult(
            "backup", name, ok, "the same SHA-256 as on the server" if ok else _last_lines(said), section
        )
    return CheckResult("backup", name, False, "no message of the archive is on the server", section)
