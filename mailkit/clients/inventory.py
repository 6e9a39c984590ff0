"""What an IMAP account holds, folder by folder, read from another host as a mail program reads it; and how two
accounts differ.

A message is known by its ``Message-ID`` and a hash of its body (:class:`MessageKey`): the same message copied by any
tool keeps both, and two different messages that share a ``Message-ID`` (it happens) still differ. The answer comes
from a remote program (:mod:`mailkit.remote.imap_inventory`) and is checked here before it is believed: a server
is hostile.

>>> a = Inventory("/", {"INBOX": Folder((), (Entry(MessageKey("<1@x>", "ab"), ("\\\\Seen",), 10),))})
>>> a.count(), a.keys("INBOX")
(1, Counter({MessageKey(message_id='<1@x>', body_sha256='ab'): 1}))
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from mailkit.clients.remote_client import run_program
from mailkit.core.errors import MailkitError
from mailkit.core.ssh import Connection
from mailkit.core.values import Password
from mailkit.remote import source

PROGRAM = source("imap_inventory")
MAX_FOLDERS = 1000
MAX_MESSAGES = 200_000


@dataclass(frozen=True, order=True)
class MessageKey:
    """A message, known the way it survives a copy: its ``Message-ID`` and its body's SHA-256."""

    message_id: str
    body_sha256: str


@dataclass(frozen=True)
class Entry:
    """A message in one folder: what it is, its flags, its size and its UID there."""

    key: MessageKey
    flags: tuple[str, ...]
    size: int
    uid: int = 0


@dataclass(frozen=True)
class Folder:
    special_use: tuple[str, ...]
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Inventory:
    """An account: its hierarchy separator and its folders by (Unicode) name."""

    separator: str
    folders: dict[str, Folder]

    def keys(self, folder: str) -> Counter[MessageKey]:
        """The messages of ``folder``, counted (a message held twice in one folder counts twice)."""
        found = self.folders.get(folder)
        return Counter(e.key for e in found.entries) if found else Counter()

    def flags(self, folder: str) -> dict[MessageKey, tuple[str, ...]]:
        found = self.folders.get(folder)
        return {e.key: e.flags for e in found.entries} if found else {}

    def count(self) -> int:
        """Messages in all folders (a message in two folders counts twice)."""
        return sum(len(f.entries) for f in self.folders.values())

    def with_special_use(self, flag: str) -> list[str]:
        """The folders carrying the RFC 6154 flag ``flag`` (``\\All``, ``\\Sent``, ...)."""
        return sorted(name for name, f in self.folders.items() if flag in f.special_use)

    def size(self) -> int:
        return sum(e.size for f in self.folders.values() for e in f.entries)


def _text(value: Any, limit: int, what: str) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise MailkitError(f"the inventory's answer has a {what} that is not text of at most {limit} characters")
    return value


def parse_answer(answer: dict[str, Any]) -> Inventory:
    """The remote program's answer, checked: types, sizes and counts within bounds.

    >>> parse_answer({"ok": True, "separator": "/", "folders": {"INBOX": {"special_use": [], "messages": [
    ...     {"message_id": "<a@b>", "body_sha256": "00", "flags": ["\\\\Seen"], "size": 3}]}}}).count()
    1
    >>> parse_answer({"ok": False, "error": "AUTHENTICATIONFAILED"})
    Traceback (most recent call last):
    mailkit.core.errors.MailkitError: the inventory could not be taken: AUTHENTICATIONFAILED
    """
    if not answer.get("ok"):
        raise MailkitError(f"the inventory could not be taken: {_text(answer.get('error', '?'), 400, 'error')}")
    raw_folders = answer.get("folders")
    if not isinstance(raw_folders, dict) or len(raw_folders) > MAX_FOLDERS:
        raise MailkitError(f"the inventory's answer has no folders or more than {MAX_FOLDERS}")
    folders: dict[str, Folder] = {}
    total = 0
    for name, raw in raw_folders.items():
        _text(name, 1000, "folder name")
        if not isinstance(raw, dict) or not isinstance(raw.get("messages"), list):
            raise MailkitError(f"the inventory's answer for folder {name!r} is not a folder")
        total += len(raw["messages"])
        if total > MAX_MESSAGES:
            raise MailkitError(f"the inventory's answer holds more than {MAX_MESSAGES} messages")
        entries = []
        for item in raw["messages"]:
            if not isinstance(item, dict) or not isinstance(item.get("flags"), list):
                raise MailkitError(f"the inventory's answer for folder {name!r} has a message that is not one")
            size = item.get("size")
            if not isinstance(size, int) or size < 0:
                raise MailkitError(f"the inventory's answer for folder {name!r} has a message without a size")
            key = MessageKey(
                _text(item.get("message_id"), 300, "Message-ID"), _text(item.get("body_sha256"), 64, "hash")
            )
            uid = item.get("uid", 0)
            if not isinstance(uid, int) or not 0 <= uid < 2**32:
                raise MailkitError(f"the inventory's answer for folder {name!r} has a message with a wrong UID")
            entries.append(Entry(key, tuple(_text(f, 100, "flag") for f in item["flags"][:50]), size, uid))
        special = tuple(_text(f, 20, "special-use flag") for f in raw.get("special_use", [])[:10])
        folders[name] = Folder(special, tuple(entries))
    return Inventory(_text(answer.get("separator", "/"), 1, "separator"), folders)


def take_inventory(
    outside: Connection,
    host: str,
    user: str,
    password: Password,
    port: int = 993,
    seconds: int = 600,
    only: list[str] | None = None,
) -> Inventory:
    """The account ``user`` at ``host`` as seen from ``outside`` (IMAP over TLS, the certificate verified); with
    ``only``, just those folders."""
    request: dict[str, Any] = {
        "host": host,
        "port": port,
        "user": user,
        "password": password.reveal(),
        "seconds": seconds,
        "max_folders": MAX_FOLDERS,
        "max_messages": MAX_MESSAGES,
    }
    if only is not None:
        request["only"] = only
    return parse_answer(run_program(outside, PROGRAM, request, timeout=seconds + 30))
