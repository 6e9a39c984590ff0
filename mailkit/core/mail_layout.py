"""The mail layout: every path, map type and line format of the guide's flat files, in one place.

Part 1, part 2, the ``mailkit mailbox`` commands and the templates all read these facts from here,
so changing one (say the map type) changes it everywhere at once.

>>> LAYOUT.map_ref(LAYOUT.mailbox_map)
'lmdb:/etc/postfix/vmailbox'
>>> LAYOUT.mailbox_line(EmailAddress("alice@example.org"))
'alice@example.org example.org/alice/'
>>> LAYOUT.maildir(EmailAddress("alice@example.org"))
'/var/vmail/example.org/alice'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailkit.core.values import EmailAddress

#: The database file ``postmap`` makes for each map type (``hash`` and ``btree`` share ``.db``).
DB_SUFFIX = {"lmdb": ".lmdb", "cdb": ".cdb", "hash": ".db", "btree": ".db"}
#: Where a Maildir keeps its messages: ``new`` (delivered, not yet seen by a client) and ``cur``; ``tmp`` holds
#: files still being written, never a message to read.
MESSAGE_DIRS = ("cur", "new")


@dataclass(frozen=True)
class MailLayout:
    """Where the virtual mailboxes live and how their flat files are written."""

    vmail_user: str = "vmail"
    vmail_uid: int = 5000
    vmail_base: str = "/var/vmail"
    map_type: str = "lmdb"
    mailbox_map: str = "/etc/postfix/vmailbox"
    alias_map: str = "/etc/postfix/virtual"
    sender_map: str = "/etc/postfix/sender_logins"
    passwd_file: str = "/etc/dovecot/users"
    #: A password scheme Dovecot 2.3 and 2.4 both accept, always written with its {PREFIX}.
    scheme: str = "SHA512-CRYPT"

    def map_ref(self, path: str) -> str:
        """How main.cf names a map: ``lmdb:/etc/postfix/vmailbox``."""
        return f"{self.map_type}:{path}"

    def maildir(self, address: EmailAddress) -> str:
        return f"{self.vmail_base}/{address.domain}/{address.local}"

    @staticmethod
    def mailbox_line(address: EmailAddress) -> str:
        """A ``virtual_mailbox_maps`` line: the Maildir relative to the base ("/" at the end = Maildir)."""
        return f"{address} {address.domain}/{address.local}/"

    @staticmethod
    def alias_line(alias: str, targets: Sequence[str]) -> str:
        return f"{alias} {','.join(targets)}"

    @staticmethod
    def sender_line(address: str, logins: Sequence[str]) -> str:
        """A ``smtpd_sender_login_maps`` line: the address, then the logins that may send as it."""
        return f"{address} {','.join(logins)}"


LAYOUT = MailLayout()
