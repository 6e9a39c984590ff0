"""Mailboxes: the three flat files that must agree, and the changes that keep them agreeing.

A mailbox exists in Postfix's ``virtual_mailbox_maps`` source (where its mail goes), in Dovecot's
passwd-file (its password hash) and in ``smtpd_sender_login_maps`` (which From addresses its login
may use). The changes here are *relative* (this address added, that one removed): the engine reads
the files again under the host's apply lock and edits what is there, so concurrent commands never
undo each other. Passwords are hashed on the server at apply time and never shown.

>>> parse_table("# comment\\nalice@example.org example.org/alice/\\n")
{'alice@example.org': 'example.org/alice/'}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mailkit.core.checks import CheckResult
from mailkit.core.errors import UsageError
from mailkit.core.facts import FileInfo, gather
from mailkit.core.mail_layout import LAYOUT, MailLayout
from mailkit.core.resources import LookupTable, PasswdFile, PasswdUser, Resource
from mailkit.core.resources.dovecot import parse_passwd
from mailkit.core.ssh import Connection
from mailkit.core.values import EmailAddress, Password


def parse_table(text: str) -> dict[str, str]:
    """``key value`` lines of a Postfix map source (comments and blank lines skipped)."""
    entries = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            entries[key] = value.strip()
    return entries


def sender_logins(mailboxes: Sequence[str], aliases: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Which logins may send as which address: a mailbox as itself, an alias as its target mailboxes."""
    owners: dict[str, list[str]] = {m: [m] for m in mailboxes}
    for alias, targets in aliases.items():
        local = [t for t in targets if t in owners]
        if local:
            owners[alias] = local
    return owners


def sender_map_content(owners: Mapping[str, Sequence[str]], layout: MailLayout = LAYOUT) -> str:
    header = "# smtpd_sender_login_maps: address -> the logins that may use it as their sender. Written by mailkit.\n"
    return header + "".join(layout.sender_line(a, owners[a]) + "\n" for a in sorted(owners))


def passwd_file(mailboxes: Sequence[str], passwords: Mapping[str, Password], layout: MailLayout = LAYOUT) -> PasswdFile:
    """The guide's passwd-file: exactly ``mailboxes``; existing hashes kept, new ones made on the host."""
    users = tuple(PasswdUser(m, passwords.get(str(m))) for m in mailboxes)
    return PasswdFile(users, layout.passwd_file, exclusive=True, scheme=layout.scheme)


@dataclass(frozen=True)
class MailboxFiles:
    """The current content of the files (empty where a file does not exist)."""

    mailboxes: dict[str, str]
    hashes: dict[str, str]
    senders: dict[str, str]
    aliases: dict[str, str]

    @classmethod
    def read(cls, conn: Connection, layout: MailLayout = LAYOUT) -> MailboxFiles:
        paths = (layout.mailbox_map, layout.passwd_file, layout.sender_map, layout.alias_map)
        boxes, passwd, senders, aliases = (
            (s.content or b"").decode() for s in gather(conn, [FileInfo(p) for p in paths])
        )
        hashes = {user: hashed for user, (hashed, _) in parse_passwd(passwd).items()}
        return cls(parse_table(boxes), hashes, parse_table(senders), parse_table(aliases))


# -- day-to-day changes (the `mailkit mailbox` commands) ---------------------------------------------
def _check_domain(conn: Connection, mailbox: EmailAddress, layout: MailLayout) -> None:
    expanded = conn.run(["postconf", "-xh", "virtual_mailbox_domains"], check=False).stdout
    aliases = FileInfo(layout.alias_map).get(conn)
    if mailbox.domain not in expanded.replace(",", " ").split():
        raise UsageError(f"{mailbox.domain} is not one of this server's virtual_mailbox_domains")
    if mailbox in parse_table((aliases.content or b"").decode()):
        raise UsageError(f"{mailbox} is an alias; remove it from {layout.alias_map} first")


def add_mailbox(conn: Connection, address: str, password: Password, layout: MailLayout = LAYOUT) -> list[Resource]:
    """Adding ``address``: its map line, a new hash and its sender login. An existing address is refused."""
    mailbox = EmailAddress(address, field="address")
    _check_domain(conn, mailbox, layout)
    _, maildir = layout.mailbox_line(mailbox).split(" ", 1)
    return [
        LookupTable(layout.mailbox_map, entries={mailbox: maildir}, map_type=layout.map_type),
        PasswdFile((PasswdUser(mailbox, password, new=True),), layout.passwd_file, scheme=layout.scheme),
        LookupTable(layout.sender_map, entries={mailbox: mailbox}, map_type=layout.map_type),
    ]


def remove_mailbox(address: str, layout: MailLayout = LAYOUT) -> list[Resource]:
    """Removing ``address`` from the three files. Its Maildir stays on disk: mail is never deleted here."""
    mailbox = EmailAddress(address, field="address")
    return [
        LookupTable(layout.mailbox_map, remove=(mailbox,), map_type=layout.map_type),
        PasswdFile((), layout.passwd_file, remove=(mailbox,), scheme=layout.scheme),
        LookupTable(layout.sender_map, remove=(mailbox,), map_type=layout.map_type),
    ]


def set_password(conn: Connection, address: str, password: Password, layout: MailLayout = LAYOUT) -> list[Resource]:
    """A new hash for an existing mailbox; its other passwd-file fields stay."""
    mailbox = EmailAddress(address, field="address")
    if mailbox not in MailboxFiles.read(conn, layout).mailboxes:
        raise UsageError(f"{mailbox} is not a mailbox (see 'mailkit mailbox list')")
    return [PasswdFile((PasswdUser(mailbox, password, reset=True),), layout.passwd_file, scheme=layout.scheme)]


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
