"""Mailboxes: the three flat files that must agree, and the helpers that keep them agreeing.

A mailbox exists in Postfix's ``virtual_mailbox_maps`` source (where its mail goes), in Dovecot's
passwd-file (its password hash) and in ``smtpd_sender_login_maps`` (which From addresses its login
may use). Passwords are hashed on the server by ``doveadm pw`` (the password travels on stdin) and
never appear in an output, a diff or a log.

>>> parse_table("# comment\\nalice@example.org example.org/alice/\\n")
{'alice@example.org': 'example.org/alice/'}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mailkit.checks import CheckResult
from mailkit.errors import MailkitError, UsageError
from mailkit.facts import FileInfo, gather
from mailkit.resources import File, LookupTable, Resource
from mailkit.ssh import Connection
from mailkit.values import EmailAddress, Password

MAILBOX_MAP = "/etc/postfix/vmailbox"
ALIAS_MAP = "/etc/postfix/virtual"
SENDER_MAP = "/etc/postfix/sender_logins"
PASSWD_FILE = "/etc/dovecot/users"
#: A scheme Dovecot 2.3 and 2.4 both accept, always written with its {PREFIX}.
SCHEME = "SHA512-CRYPT"


def parse_table(text: str) -> dict[str, str]:
    """``key value`` lines of a Postfix map source (comments and blank lines skipped)."""
    entries = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            entries[key] = value.strip()
    return entries


def parse_passwd(text: str) -> dict[str, str]:
    """``user:{SCHEME}hash[:...]`` lines of a Dovecot passwd-file."""
    entries = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            user, _, rest = line.partition(":")
            entries[user] = rest.split(":", 1)[0]
    return entries


def hash_password(conn: Connection, password: Password, scheme: str = SCHEME) -> str:
    """A salted hash made on the server by ``doveadm pw`` (the password goes on stdin, twice)."""
    secret = password.reveal()
    result = conn.run(["doveadm", "pw", "-s", scheme], input=f"{secret}\n{secret}\n", check=False)
    hashed = result.stdout.strip()
    if result.failed or not hashed.startswith(f"{{{scheme}}}"):
        raise MailkitError(f"doveadm pw -s {scheme} failed (exit {result.exited}): {result.stderr.strip()}")
    return hashed


def passwd_content(hashes: Mapping[str, str]) -> str:
    header = "# Dovecot passwd-file: one address:hash line per mailbox. Written by mailkit; mode 0640, group dovecot.\n"
    return header + "".join(f"{user}:{hashes[user]}\n" for user in sorted(hashes))


def sender_logins(mailboxes: Sequence[str], aliases: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Which logins may send as which address: a mailbox as itself, an alias as its target mailboxes."""
    owners: dict[str, list[str]] = {m: [m] for m in mailboxes}
    for alias, targets in aliases.items():
        local = [t for t in targets if t in owners]
        if local:
            owners[alias] = local
    return owners


def sender_map_content(owners: Mapping[str, Sequence[str]]) -> str:
    header = "# smtpd_sender_login_maps: address -> the logins that may use it as their sender. Written by mailkit.\n"
    return header + "".join(f"{a} {','.join(owners[a])}\n" for a in sorted(owners))


@dataclass(frozen=True)
class MailboxFiles:
    """The current content of the three files (empty where a file does not exist)."""

    mailboxes: dict[str, str]
    hashes: dict[str, str]
    senders: dict[str, str]
    aliases: dict[str, str]
    mailbox_text: str
    sender_text: str

    @classmethod
    def read(cls, conn: Connection) -> MailboxFiles:
        boxes, passwd, senders, aliases = gather(
            conn, [FileInfo(MAILBOX_MAP), FileInfo(PASSWD_FILE), FileInfo(SENDER_MAP), FileInfo(ALIAS_MAP)]
        )

        def text(state: object) -> str:
            return (getattr(state, "content", None) or b"").decode()

        return cls(
            parse_table(text(boxes)),
            parse_passwd(text(passwd)),
            parse_table(text(senders)),
            parse_table(text(aliases)),
            text(boxes),
            text(senders),
        )


def desired_hashes(
    conn: Connection, files: MailboxFiles, mailboxes: Sequence[str], passwords: Mapping[str, Password]
) -> dict[str, str]:
    """Hashes for ``mailboxes``: kept from the server where one exists, else made from ``passwords``.

    Changing an existing password is an explicit act (:func:`set_password`), so applying the guide
    twice never rehashes (a new salt would otherwise change the file every time).
    """
    hashes = {}
    for mailbox in mailboxes:
        if mailbox in files.hashes:
            hashes[mailbox] = files.hashes[mailbox]
        elif mailbox in passwords:
            hashes[mailbox] = hash_password(conn, passwords[mailbox])
        else:
            raise UsageError(f"no password for the new mailbox {mailbox}: give one in PASSWORDS")
    return hashes


def passwd_file(hashes: Mapping[str, str]) -> File:
    return File(PASSWD_FILE, passwd_content(hashes), owner="root", group="dovecot", mode=0o640, service="dovecot")


# -- day-to-day changes (the `mailkit mailbox` commands) ---------------------------------------------
def _domains(conn: Connection) -> list[str]:
    value = conn.run(["postconf", "-xh", "virtual_mailbox_domains"]).stdout
    return value.replace(",", " ").split()


def _with_line(text: str, key: str, line: str | None) -> str:
    """``text`` with the entry for ``key`` replaced by ``line`` (or removed when None), comments kept."""
    kept = [
        row
        for row in text.splitlines()
        if not (row.strip() and not row.lstrip().startswith("#") and row.split()[0] == key)
    ]
    if line is not None:
        kept.append(line)
    return "\n".join(kept) + "\n" if kept else ""


def change_resources(hashes: dict[str, str], boxes_text: str, senders_text: str) -> list[Resource]:
    """The three files as one change: applied together, validated by Postfix and Dovecot, or not at all."""
    return [
        LookupTable(MAILBOX_MAP, boxes_text),
        passwd_file(hashes),
        LookupTable(SENDER_MAP, senders_text),
    ]


def add_mailbox(conn: Connection, address: str, password: Password) -> list[Resource]:
    """What adding ``address`` changes (nothing when it exists with a password already)."""
    mailbox = EmailAddress(address, field="address")
    if mailbox.domain not in _domains(conn):
        raise UsageError(f"{mailbox.domain} is not one of this server's virtual_mailbox_domains")
    files = MailboxFiles.read(conn)
    if mailbox in files.aliases:
        raise UsageError(f"{mailbox} is an alias; remove it from {ALIAS_MAP} first")
    hashes = dict(files.hashes)
    if mailbox not in hashes:
        hashes[mailbox] = hash_password(conn, password)
    boxes = files.mailbox_text
    if mailbox not in files.mailboxes:
        boxes = _with_line(boxes, mailbox, f"{mailbox} {mailbox.domain}/{mailbox.local}/")
    senders = files.sender_text
    if mailbox not in files.senders:
        senders = _with_line(senders, mailbox, f"{mailbox} {mailbox}")
    return change_resources(hashes, boxes, senders)


def remove_mailbox(conn: Connection, address: str) -> list[Resource]:
    """What removing ``address`` changes. Its Maildir stays on disk: mail is never deleted here."""
    mailbox = EmailAddress(address, field="address")
    files = MailboxFiles.read(conn)
    hashes = {k: v for k, v in files.hashes.items() if k != mailbox}
    boxes = _with_line(files.mailbox_text, mailbox, None)
    senders = _with_line(files.sender_text, mailbox, None)
    return change_resources(hashes, boxes, senders)


def set_password(conn: Connection, address: str, password: Password) -> list[Resource]:
    mailbox = EmailAddress(address, field="address")
    files = MailboxFiles.read(conn)
    if mailbox not in files.mailboxes:
        raise UsageError(f"{mailbox} is not a mailbox (see 'mailkit mailbox list')")
    hashes = dict(files.hashes)
    hashes[mailbox] = hash_password(conn, password)
    return change_resources(hashes, files.mailbox_text, files.sender_text)


def check_consistency(files: MailboxFiles, group: str = "mailboxes") -> list[CheckResult]:
    """Every mailbox in all three files, and nothing in one that is missing from the others."""
    boxes, hashes, senders = set(files.mailboxes), set(files.hashes), set(files.senders)
    results = []
    for name, have, fix in (
        ("password (Dovecot passwd-file)", hashes, "mailkit mailbox passwd ADDRESS"),
        ("sender login (smtpd_sender_login_maps)", senders, "mailkit mailbox add ADDRESS"),
    ):
        missing = sorted(boxes - have)
        results.append(CheckResult(group, f"every mailbox has a {name}", not missing, ", ".join(missing) or "yes", fix))
    orphans = sorted(hashes - boxes)
    results.append(
        CheckResult(
            group,
            "every password belongs to a mailbox",
            not orphans,
            ", ".join(orphans) or "yes",
            "mailkit mailbox remove ADDRESS",
        )
    )
    return results
