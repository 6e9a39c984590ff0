"""Where the backups go: an SSH account on another machine with ``borg`` installed (a storage box, a second
server, a friend's), and the host key the reader was given for it (pinned: never learned on first use).

>>> space = BackupSpace(Hostname("backup.example.net"), "borg", "mail.example.org",
...                     "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIClnkdY0ORW99nEM6kMP/5ZtzYiwdyTakgs3wzLbZEh3")
>>> space.repository
'ssh://borg@backup.example.net/./mail.example.org'
>>> space.known_hosts_line().split()[0]
'backup.example.net'
>>> BackupSpace(Hostname("backup.example.net"), "borg", "../etc", space.host_key)
Traceback (most recent call last):
...
mailkit.core.values.ValueRejected: BACKUP_PATH: '../etc' must be a path of letters, digits, '.', '_', '-' and '/', \
without '..'
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from mailkit.core.resources.base import account_name
from mailkit.core.values import Hostname, ValueRejected

_PATH = re.compile(r"/?[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")


@dataclass(frozen=True)
class BackupSpace:
    """The backup host, the account there, the repository's path (relative: in the account's home) and the
    host's public key as ``TYPE BASE64`` (from the provider's page, or ``ssh-keyscan`` compared with it)."""

    host: Hostname
    user: str
    path: str
    host_key: str
    port: int = 22

    def __post_init__(self) -> None:
        account_name(self.user, "BACKUP_USER")
        if not _PATH.fullmatch(self.path) or ".." in self.path.split("/") or len(self.path) > 200:
            raise ValueRejected(
                "BACKUP_PATH", self.path, "must be a path of letters, digits, '.', '_', '-' and '/', without '..'"
            )
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise ValueRejected("BACKUP_PORT", self.port, "is not a port number")
        object.__setattr__(self, "host_key", public_key_line(self.host_key, "BACKUP_HOST_KEY"))

    @property
    def repository(self) -> str:
        """The repository as borg names it: ``ssh://user@host[:port]/path`` (``/./`` for a path in the home)."""
        port = "" if self.port == 22 else f":{self.port}"
        path = self.path if self.path.startswith("/") else f"./{self.path}"
        return f"ssh://{self.user}@{self.host}{port}/{path}"

    def known_hosts_line(self) -> str:
        """The host's key as ``ssh`` reads it from a known_hosts file."""
        name = str(self.host) if self.port == 22 else f"[{self.host}]:{self.port}"
        return f"{name} {self.host_key}"

    def authorized_line(self, public_key: str, comment: str) -> str:
        """The line for the backup host's ``~/.ssh/authorized_keys``: this key may only run ``borg serve``,
        append-only, on this one repository (no shell, no forwarding, no deleting)."""
        key = public_key_line(public_key, "the server's backup key")
        if not re.fullmatch(r"[A-Za-z0-9@._-]{1,100}", comment):
            raise ValueRejected("comment", comment, "must be letters, digits, '@', '.', '_' or '-'")
        serve = f"borg serve --append-only --restrict-to-repository {self.path}"
        return f'command="{serve}",restrict {key} {comment}'


def public_key_line(text: str, field: str) -> str:
    """``TYPE BASE64`` of an OpenSSH public key (a comment after it is dropped), the base64 checked to hold a
    key of that type.

    >>> public_key_line("ssh-ed25519 AAAA", "key")
    Traceback (most recent call last):
    ...
    mailkit.core.values.ValueRejected: key: 'ssh-ed25519 AAAA' is not an OpenSSH public key (TYPE BASE64)
    """
    parts = str(text).strip().split()
    if len(parts) >= 2 and parts[0] in _KEY_TYPES and len(parts[1]) <= 2000:
        try:
            blob = base64.b64decode(parts[1], validate=True)
        except (binascii.Error, ValueError):
            blob = b""
        kind = parts[0].encode()
        if blob[:4] == len(kind).to_bytes(4, "big") and blob[4 : 4 + len(kind)] == kind:
            return f"{parts[0]} {parts[1]}"
    raise ValueRejected(field, str(text)[:80], "is not an OpenSSH public key (TYPE BASE64)")
