"""The DMARC aggregate reports that reached the server, read straight from the Maildirs: every folder of every mailbox
(a report may have been filed as Junk), the newest few of the last days, bounded in number and size.

Only read, and as the mail's own account (``vmail``), never as root: a link in a Maildir leads nowhere that account
cannot read already, and nothing of Dovecot's (its index, its caches) is touched, so a check changes nothing and works
with Dovecot stopped. A message is a report when a line of its header (not its body) is ``Subject: Report Domain: D``,
the subject RFC 7489 asks for. What the reports say is :mod:`mailkit.domain.reports`' and the rule
:func:`mailkit.server.rules.own_mail_passes`.

>>> listing = "/var/vmail/example.org/dmarc/cur/1796597078.M1P2.mail\\tSubject: Report Domain: example.org Submitter: x"
>>> report_files(listing, ["example.org", "example.net"])
{'example.org': ['/var/vmail/example.org/dmarc/cur/1796597078.M1P2.mail'], 'example.net': []}
"""

from __future__ import annotations

import re

from mailkit.core.errors import MailkitError
from mailkit.core.mail_layout import LAYOUT, MESSAGE_DIRS
from mailkit.core.ssh import Connection

#: How far back reports are read, how many at most per domain (the newest), and the most bytes one may have.
REPORT_DAYS = 8
MAX_REPORT_MESSAGES = 20
MAX_REPORT_BYTES = 10 * 1024 * 1024
#: The most report files listed, all domains together.
MAX_LISTED = 5000

#: Lists ``PATH<TAB>SUBJECT LINE`` for each message file under ``$1`` saved in the last ``$2`` days whose header
#: (up to its first empty line) has a ``Subject: Report Domain:`` line. Run as the mail's account.
_IN_MESSAGE_DIRS = " -o ".join(f"-path '*/{sub}/*'" for sub in MESSAGE_DIRS)
_LIST = (
    rf"""find "$1" -mindepth 3 -maxdepth 5 -type f \( {_IN_MESSAGE_DIRS} \) \
"""
    + r"""  -mtime "-$2" -size "-$3"c -print0 |
xargs -0 -r awk 'FNR == 1 { head = 1 }
  head && /^\r?$/ { head = 0; nextfile }
  head && tolower($0) ~ /^subject:[ \t]*report domain:/ { print FILENAME "\t" $0; nextfile }'
"""
)
_SUBJECT = re.compile(r"subject:[ \t]*report domain:[ \t]*([^ \t\r]+)", re.IGNORECASE)
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]|/\.\.?/")


def _delivered_at(path: str) -> int:
    """When Dovecot saved the file, from its name (``1796597078.M139526P257.mail``: the seconds); 0 if unknown."""
    stamp = path.rsplit("/", 1)[-1].split(".", 1)[0]
    return int(stamp) if stamp.isdigit() and len(stamp) <= 12 else 0


def report_files(listing: str, domains: list[str]) -> dict[str, list[str]]:
    """From :data:`_LIST`'s answer: each domain's report files, newest first, at most MAX_REPORT_MESSAGES; a line
    naming a file outside the Maildirs, or a name with control characters or ``..``, is left out."""
    found: dict[str, list[str]] = {d: [] for d in domains}
    wanted = {d.lower(): d for d in domains}
    for line in listing.splitlines()[:MAX_LISTED]:
        path, _, subject = line.partition("\t")
        said = _SUBJECT.match(subject.strip())
        if not said or not path.startswith(LAYOUT.vmail_base + "/") or _UNSAFE.search(path):
            continue
        domain = wanted.get(said.group(1).lower().rstrip("."))
        if domain:
            found[domain].append(path)
    return {d: sorted(paths, key=_delivered_at, reverse=True)[:MAX_REPORT_MESSAGES] for d, paths in found.items()}


def _as_mail_account(argv: list[str]) -> list[str]:
    return ["runuser", "-u", LAYOUT.vmail_user, "--", *argv]


def read_report_messages(conn: Connection, domains: list[str]) -> dict[str, list[bytes]]:
    """The newest report messages about each of ``domains`` saved in the last REPORT_DAYS days in any folder of any
    mailbox on the server, each at most MAX_REPORT_BYTES (a larger one is left out)."""
    listed = conn.run(
        _as_mail_account(["sh", "-c", _LIST, "sh", LAYOUT.vmail_base, str(REPORT_DAYS), str(MAX_REPORT_BYTES + 1)]),
        check=False,
        timeout=120,
        max_output=4 * 1024 * 1024,
    )
    if listed.exited not in (0, 123):  # 123: xargs saying a file went away meanwhile (Dovecot moved it)
        raise MailkitError(f"listing the Maildirs failed: {listed.stderr.strip()[-200:]}")
    messages: dict[str, list[bytes]] = {}
    for domain, paths in report_files(listed.stdout, domains).items():
        messages[domain] = []
        for path in paths:
            read = conn.run(
                _as_mail_account(["head", "-c", str(MAX_REPORT_BYTES + 1), "--", path]),
                check=False,
                timeout=60,
                max_output=MAX_REPORT_BYTES + 2,
            )
            if read.ok and 0 < len(read.stdout) <= MAX_REPORT_BYTES:
                messages[domain].append(read.stdout.encode("utf-8", errors="surrogateescape"))
    return messages
