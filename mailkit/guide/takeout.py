"""Moving in from an export: a Takeout-style mbox file (every message once, its labels in ``X-Gmail-Labels``) brought
into a mailbox at home with Dovecot's ``doveadm import``.

The export is a file someone hands you, so it is read as hostile: a message larger than :data:`MAX_MESSAGE` or more
than :data:`MAX_MESSAGES` of them is an error, not a full disk. Each message is filed by its labels, as the sync
files the provider's folders (one copy per label); the labels that are not folders become flags or stay behind:

- ``Inbox``, ``Sent``, ``Drafts``: the server's ``INBOX``, ``Sent``, ``Drafts``; any other label: a folder of that name
  (``Rechnungen/2024`` nested); no folder label at all (archived): ``Archive``;
- ``Starred``: the ``\\Flagged`` flag; ``Opened``: ``\\Seen`` (``Unread``: not); ``Important``, ``Category ...``:
  nothing;
- ``Spam``, ``Trash``: left out, as the sync leaves those folders at the provider.

The messages go to the server as a Maildir in a directory only the mail user can read, ``doveadm import`` copies
them with their flags and dates, and the directory is removed. A message already in its folder at home (the same
``Message-ID`` and body) is left out, so importing the same export twice brings nothing twice.

>>> labels_of('Inbox,Opened,=?UTF-8?Q?Fam=C3=ADlia?=,"a, b"')
['Inbox', 'Opened', 'Família', 'a, b']
>>> filing(["Inbox", "Opened", "Starred", "Work/Projects"])
(('INBOX', 'Work/Projects'), ('\\\\Flagged', '\\\\Seen'))
>>> filing(["Opened"]), filing(["Spam", "Opened"])
((('Archive',), ('\\\\Seen',)), ((), ('\\\\Seen',)))
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import BinaryIO

from mailkit.clients.inventory import Inventory, MessageKey
from mailkit.core.errors import MailkitError, UsageError
from mailkit.core.imap_names import home_name, mutf7
from mailkit.core.ssh import Connection
from mailkit.core.text import shorten
from mailkit.core.values import EmailAddress
from mailkit.guide.moving_in import ARCHIVE, DISK_FULL, disk_full

MAX_MESSAGE = 100 * 1024 * 1024
MAX_MESSAGES = 500_000
MAX_LABELS = 100
FOLDER_OF_LABEL = {"inbox": "INBOX", "sent": "Sent", "drafts": "Drafts", "archived": ARCHIVE}
FLAG_OF_LABEL = {"starred": "\\Flagged", "opened": "\\Seen"}
LEFT_OUT = {"spam", "trash"}
NOT_FOLDERS = {"unread", "important", "chat"}
_MAILDIR_FLAGS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S"}


@dataclass(frozen=True)
class ExportedMessage:
    """One message of the export: its bytes (``From `` line and label header removed), folders and flags."""

    number: int
    content: bytes
    folders: tuple[str, ...]
    flags: tuple[str, ...]
    stamp: int

    @property
    def key(self) -> MessageKey:
        return message_key(self.content)


def message_key(content: bytes) -> MessageKey:
    """A message's ``Message-ID`` and body hash, as the inventory reads them over IMAP.

    >>> crlf = message_key(b"Subject: x\\r\\nMessage-ID:  <a@b> \\r\\n\\r\\nhi\\r\\n")
    >>> crlf == message_key(b"Message-ID: <a@b>\\n\\nhi\\n")
    True
    """
    text = content.replace(b"\r\n", b"\n")
    header, _, body = text.partition(b"\n\n")
    found = re.search(rb"^Message-ID:\s*(.*?)\s*$", header + b"\n", re.MULTILINE | re.IGNORECASE)
    message_id = found.group(1).decode(errors="replace")[:300] if found else ""
    return MessageKey(message_id, hashlib.sha256(body).hexdigest())


def labels_of(value: str) -> list[str]:
    """The labels of an ``X-Gmail-Labels`` value: comma-separated, quoted when they hold a comma, MIME-encoded when
    not ASCII."""
    labels, current, quoted = [], "", False
    for char in value:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            labels.append(current)
            current = ""
        else:
            current += char
    labels.append(current)
    decoded = []
    for label in (part.strip() for part in labels):
        if label:
            decoded.append(_decoded(label))
            if not decoded[-1].isprintable() or len(decoded[-1]) > 200:
                raise MailkitError(f"a label of the export is not a folder name: {shorten(repr(decoded[-1]), 80)}")
    if len(decoded) > MAX_LABELS:
        raise MailkitError(f"a message of the export has more than {MAX_LABELS} labels")
    return decoded


def _decoded(label: str) -> str:
    """A MIME-encoded label decoded; one that says it is encoded and is not, kept as written."""
    if "=?" not in label:
        return label
    try:
        return str(make_header(decode_header(label)))
    except (ValueError, LookupError, UnicodeDecodeError):
        return label


def filing(labels: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The folders and flags a message's labels give it (see the module's text)."""
    names = [label.strip() for label in labels]
    if any(n.lower() in LEFT_OUT for n in names):
        folders: list[str] = []
    else:
        folders = [
            FOLDER_OF_LABEL.get(n.lower(), home_name(n))
            for n in names
            if n.lower() not in FLAG_OF_LABEL and n.lower() not in NOT_FOLDERS and not n.lower().startswith("category ")
        ]
        folders = list(dict.fromkeys(folders)) or [ARCHIVE]
    flags = sorted({FLAG_OF_LABEL[n.lower()] for n in names if n.lower() in FLAG_OF_LABEL})
    return tuple(folders), tuple(flags)


def _finish(number: int, lines: list[bytes]) -> ExportedMessage:
    raw = b"".join(lines).replace(b"\r\n", b"\n")
    header, sep, body = raw.partition(b"\n\n")
    labels: list[str] = []
    kept = []
    for line in re.split(rb"\n(?![ \t])", header):
        if line.lower().startswith(b"x-gmail-labels:"):
            labels = labels_of(line.split(b":", 1)[1].decode("utf-8", errors="replace").replace("\n", ""))
        else:
            kept.append(line)
    content = b"\n".join(kept) + sep + body
    if content.endswith(b"\n\n"):
        content = content[:-1]  # the blank line before the next "From " belongs to the mbox, not the message
    folders, flags = filing(labels)
    date = re.search(rb"^Date:\s*(.+)$", header, re.MULTILINE | re.IGNORECASE)
    try:
        stamp = int(parsedate_to_datetime(date.group(1).decode(errors="replace")).timestamp()) if date else 0
    except (TypeError, ValueError, IndexError, OverflowError):
        stamp = 0
    return ExportedMessage(number, content, folders, flags, stamp)


#: The longest piece of a line read at once: a file with a line of gigabytes is read in pieces, never whole.
MAX_PIECE = 1024 * 1024


def _pieces(stream: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """The file's lines, a long one in pieces; with each, whether it starts a line."""
    at_start = True
    while piece := stream.readline(MAX_PIECE):
        yield piece, at_start
        at_start = piece.endswith(b"\n")


def read_export(stream: BinaryIO) -> Iterator[ExportedMessage]:
    """The messages of an mbox export, one by one (mboxrd: ``>From `` lines lose one ``>``)."""
    lines: list[bytes] = []
    size, number = 0, 0
    started = False
    for line, at_start in _pieces(stream):
        if at_start and line.startswith(b"From "):
            if started:
                yield _finish(number, lines)
                number += 1
                if number >= MAX_MESSAGES:
                    raise MailkitError(f"the export holds more than {MAX_MESSAGES} messages")
            started, lines, size = True, [], 0
            continue
        if not started:
            if line.strip():
                raise MailkitError("this is not an mbox file: it does not start with a 'From ' line")
            continue
        if at_start and re.match(rb">+From ", line):
            line = line[1:]
        size += len(line)
        if size > MAX_MESSAGE:
            raise MailkitError(f"message {number + 1} of the export is larger than {MAX_MESSAGE // 2**20} MB")
        lines.append(line)
    if started:
        yield _finish(number, lines)


def _folder_dir(folder: str) -> str:
    return "" if folder == "INBOX" else "." + ".".join(mutf7(part) for part in folder.split("/")) + "/"


def staging_tar(messages: Iterable[ExportedMessage], home: Inventory) -> tuple[bytes, int]:
    """The messages not yet in their folder at home, as a Maildir in a tar archive; and how many copies it holds."""
    buffer = io.BytesIO()
    copies = 0
    made: set[str] = set()
    with tarfile.open(fileobj=buffer, mode="w") as tar:

        def directory(path: str) -> None:
            if path not in made:
                made.add(path)
                info = tarfile.TarInfo(path)
                info.type, info.mode = tarfile.DIRTYPE, 0o700
                tar.addfile(info)

        for sub in ("cur", "new", "tmp"):
            directory(f"Maildir/{sub}")
        for message in messages:
            key = message.key
            flags = "".join(sorted(_MAILDIR_FLAGS[f] for f in message.flags))
            for folder in message.folders:
                if key in home.keys(folder):
                    continue
                top = f"Maildir/{_folder_dir(folder)}".rstrip("/")
                for sub in ("cur", "new", "tmp"):
                    directory(f"{top}/{sub}")
                info = tarfile.TarInfo(
                    f"{top}/cur/{message.stamp}.M{message.number}P0.takeout,S={len(message.content)}:2,{flags}"
                )
                info.size, info.mode, info.mtime = len(message.content), 0o600, message.stamp
                tar.addfile(info, io.BytesIO(message.content))
                copies += 1
    return buffer.getvalue(), copies


#: Unpacks the staging Maildir (standard input) where only the mail user reads it, imports it, removes it.
_IMPORT = """set -eu
home=$(doveadm user -f home "$1")
owner=$(stat -c %u:%g "$home")
dir=$(mktemp -d)
trap 'rm -rf -- "$dir"' EXIT
tar -x -C "$dir" --no-same-owner
chown -R "$owner" "$dir"
doveadm import -s -u "$1" "maildir:$dir/Maildir" "" all
"""


def import_export(mail: Connection, user: EmailAddress, staged: bytes, timeout: int = 3600) -> None:
    """Import a staging Maildir (:func:`staging_tar`) into ``user``'s mail, subscribing to the new folders."""
    result = mail.run(["sh", "-c", _IMPORT, "sh", str(user)], input=staged, check=False, timeout=timeout)
    if result.exited != 0:
        said = shorten(result.stderr.strip()[-600:], 600)
        raise MailkitError(f"doveadm import into {user}: {DISK_FULL + ': ' if disk_full(said) else ''}{said}")


def open_export(path: Path) -> BinaryIO:
    """The export file, opened for reading; a clear error when it is not a readable file."""
    if not path.is_file():
        raise UsageError(f"{path} is not a file: give the .mbox file of your export")
    return path.open("rb")


#: How much one batch of an import holds at most (bytes of messages, each copy counted): an export can be larger
#: than this machine's memory, and a batch that fails leaves the ones before it imported (run it again: they are
#: left out).
BATCH_BYTES = 256 * 1024 * 1024


def import_all(
    mail: Connection,
    user: EmailAddress,
    messages: Iterable[ExportedMessage],
    home: Inventory,
    batch_bytes: int = BATCH_BYTES,
) -> int:
    """Import the export's messages that are not home yet into ``user``'s mail, in batches; how many copies came.

    ``home`` is the mailbox's inventory before the import (what is already there is left out).
    """
    total, size = 0, 0
    batch: list[ExportedMessage] = []

    def flush() -> int:
        staged, copies = staging_tar(batch, home)
        if copies:
            import_export(mail, user, staged)
        return copies

    for message in messages:
        batch.append(message)
        size += len(message.content) * max(1, len(message.folders))
        if size >= batch_bytes:
            total += flush()
            batch, size = [], 0
    if batch:
        total += flush()
    return total
