"""A cloud mailbox to move out of, made deterministically: the account a reader leaves behind at Gmail-like provider.

Its shape is what such a provider's IMAP server shows: ``INBOX``; special folders under ``[Cloud]/`` (Sent Mail,
Drafts, Spam, Trash, Starred, and **All Mail holding every message** except spam and trash); labels as folders,
nested and non-ASCII (``Família``, ``Rechnungen/2024``, ``日本語``), one message under several labels (a copy in each
folder, as the provider's IMAP shows it); archived messages that are *only* in All Mail; the flags ``\\Seen``,
``\\Flagged``, ``\\Answered`` and ``\\Draft``; realistic sizes, a few attachments, and in the full-size account a few of
10-25 MB. The same ``seed`` and ``count`` always give the same bytes.

>>> account = generate(count=40, seed=7)
>>> len(account.messages), account.folder_of_all
(40, '[Cloud]/All Mail')
>>> generate(count=40, seed=7).messages[3].content == account.messages[3].content
True
>>> sorted(account.special_use.items())[0]
('[Cloud]/All Mail', '\\\\All')
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import format_datetime

from mailkit.core.imap_names import mutf7

ALL_MAIL = "[Cloud]/All Mail"
SENT = "[Cloud]/Sent Mail"
DRAFTS = "[Cloud]/Drafts"
SPAM = "[Cloud]/Spam"
TRASH = "[Cloud]/Trash"
STARRED = "[Cloud]/Starred"
#: The provider's special folders and their RFC 6154 flags, as its LIST shows them.
SPECIAL_USE: dict[str, str] = {
    ALL_MAIL: "\\All",
    SENT: "\\Sent",
    DRAFTS: "\\Drafts",
    SPAM: "\\Junk",
    TRASH: "\\Trash",
    STARRED: "\\Flagged",
}
#: Labels, each a folder: nested (the provider's separator is "/") and non-ASCII.
LABELS: tuple[str, ...] = ("Família", "Rechnungen", "Rechnungen/2024", "日本語", "Work", "Work/Projects")
SEPARATOR = "/"
DOMAIN = "cloud.example.net"
#: Where the account's messages start: about three years of mail before the move.
EPOCH = datetime(2023, 1, 2, 8, 0, tzinfo=UTC)

_CORRESPONDENTS = (
    "Dana Example <dana@example.net>",
    "Bruno Müller <bruno@b.example.org>",
    "Hanako Yamada <hanako@example.net>",
    "Accounts <billing@example.net>",
    "Newsletter <news@example.net>",
)
_SUBJECTS = (
    "Lunch on Friday?",
    "Rechnung Nr. {n}",
    "会議の件 {n}",
    "Photos from the trip",
    "Re: the plan",
    "Status {n}",
)
_WORDS = (
    "mail",
    "server",
    "debian",
    "postfix",
    "dovecot",
    "home",
    "cloud",
    "move",
    "folder",
    "label",
    "backup",
    "restore",
    "invoice",
    "photo",
    "plan",
)


@dataclass(frozen=True)
class Message:
    """One message: its bytes, the folders the provider shows it in, its flags and its arrival time."""

    number: int
    content: bytes
    folders: tuple[str, ...]
    flags: tuple[str, ...]
    received: datetime

    @property
    def message_id(self) -> str:
        """Its ``Message-ID`` header's value."""
        found = re.search(rb"^Message-ID: (<[^>]+>)", self.content, re.MULTILINE | re.IGNORECASE)
        return found.group(1).decode() if found else ""


@dataclass(frozen=True)
class Account:
    """The whole account: its user, its messages and the folders they are in."""

    user: str
    messages: tuple[Message, ...]
    special_use: dict[str, str] = field(default_factory=lambda: dict(SPECIAL_USE))
    folder_of_all: str = ALL_MAIL
    labels: tuple[str, ...] = LABELS

    def folders(self) -> list[str]:
        """Every folder, INBOX first, the rest sorted: the labels' parents too."""
        names = {"INBOX", *self.special_use, *self.labels}
        for message in self.messages:
            names.update(message.folders)
        return ["INBOX", *sorted(names - {"INBOX"})]

    def in_folder(self, folder: str) -> Iterator[Message]:
        return (m for m in self.messages if folder in m.folders)

    @property
    def size(self) -> int:
        """Bytes of all messages, each counted once."""
        return sum(len(m.content) for m in self.messages)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _text(rng: random.Random, words: int) -> str:
    body = " ".join(rng.choice(_WORDS) for _ in range(words))
    return textwrap.fill(body.capitalize() + ".", 72)


def _header(value: str) -> str:
    """A header value, MIME-encoded when it is not ASCII (as mail programs send it)."""
    return value if value.isascii() else Header(value, "utf-8").encode()


def _attachment(rng: random.Random, size: int, name: str) -> str:
    data = base64.encodebytes(rng.randbytes(size)).decode()
    return (
        f'Content-Type: application/octet-stream; name="{name}"\n'
        "Content-Transfer-Encoding: base64\n"
        f'Content-Disposition: attachment; filename="{name}"\n\n{data}'
    )


def _content(number: int, rng: random.Random, sent: bool, when: datetime, attachment: int) -> bytes:
    other = rng.choice(_CORRESPONDENTS)
    me = f"Alice <alice@{DOMAIN}>"
    subject = rng.choice(_SUBJECTS).format(n=1000 + number)
    headers = [
        f"From: {_header(me if sent else other)}",
        f"To: {_header(other if sent else me)}",
        f"Subject: {_header(subject)}",
        f"Date: {format_datetime(when)}",
        f"Message-ID: <m{number}.MSGID@{DOMAIN}>",
        "MIME-Version: 1.0",
    ]
    text = _text(rng, rng.randint(20, 900))
    if not attachment:
        body = [
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
            "",
            text,
        ]
    else:
        boundary = f"=_mailkit_{number}"
        body = [
            f'Content-Type: multipart/mixed; boundary="{boundary}"',
            "",
            f"--{boundary}",
            "Content-Type: text/plain; charset=utf-8",
            "",
            text,
            f"--{boundary}",
            _attachment(rng, attachment, f"file-{number}.bin"),
            f"--{boundary}--",
        ]
    raw = "\n".join([*headers, *body]) + "\n"
    # The Message-ID names the content it belongs to, as a real one is unique to its message.
    return raw.replace("MSGID", _digest(raw.encode())[:8]).encode()


def _broken(number: int, when: datetime) -> bytes:
    """A message a real mailbox holds sooner or later: a header that is not valid MIME, 8-bit bytes in it."""
    return (
        f"From: =?utf-8?q?Broken_=C3=A9ncoding <broken@example.net>\n"
        f"To: alice@{DOMAIN}\n"
        f"Subject: =?unknown-8bit?B?not base64 at all\n"
        f"Date: {format_datetime(when)}\n"
        f"Message-ID: <m{number}.broken@{DOMAIN}>\n"
        'Content-Type: text/plain; charset="\n\n'
    ).encode() + "Caf\xe9 au lait, sent by an old program.\n".encode("latin-1")


def generate(
    count: int = 300, seed: int = 1, user: str = f"alice@{DOMAIN}", large: int = 0, labels: tuple[str, ...] = LABELS
) -> Account:
    """The account with ``count`` messages; ``large`` of them carry a 10-25 MB attachment (the bench's account);
    messages are filed under ``labels`` (``/`` between levels) besides the special folders.

    >>> a = generate(count=200, seed=1)
    >>> only_all = [m for m in a.messages if m.folders == (ALL_MAIL,)]
    >>> bool(only_all), all(ALL_MAIL in m.folders for m in a.messages if not {SPAM, TRASH} & set(m.folders))
    (True, True)
    >>> any(len(m.folders) > 3 for m in a.messages), max(len(m.content) for m in a.messages) < 10_000_000
    (True, True)
    """
    if count < 1 or count > 100_000:
        raise ValueError(f"an account has 1 to 100,000 messages, not {count}")
    rng = random.Random(f"mailkit-cloud:{seed}")
    large_numbers = set(rng.sample(range(count), min(large, count)))
    messages = []
    for number in range(count):
        mrng = random.Random(f"mailkit-cloud:{seed}:{number}")
        when = EPOCH + timedelta(minutes=number * 97 + mrng.randint(0, 90))
        kind = mrng.choices(("received", "sent", "draft", "spam", "trash"), weights=(75, 15, 2, 3, 5))[0]
        if number == 5:
            kind = "broken"
        attachment = 0
        if number in large_numbers:
            attachment = mrng.randint(10_000_000, 25_000_000) * 3 // 4  # base64 makes it a third larger
        elif mrng.random() < 0.05:
            attachment = mrng.randint(20_000, 900_000)
        content = (
            _broken(number, when)
            if kind == "broken"
            else _content(number, mrng, kind in ("sent", "draft"), when, attachment)
        )
        folders: list[str] = []
        flags: set[str] = set()
        if kind in ("received", "broken"):
            if mrng.random() < 0.55 or kind == "broken":
                folders.append("INBOX")
            if mrng.random() < 0.8:
                flags.add("\\Seen")
            if mrng.random() < 0.12:
                flags.add("\\Answered")
        elif kind == "sent":
            folders.append(SENT)
            flags.add("\\Seen")
        elif kind == "draft":
            folders.append(DRAFTS)
            flags.update(("\\Draft", "\\Seen"))
        elif kind == "spam":
            folders.append(SPAM)
        else:
            folders.append(TRASH)
            flags.add("\\Seen")
        if kind in ("received", "sent"):
            folders += mrng.sample(labels, k=mrng.choices((0, 1, 2, 3), weights=(55, 30, 10, 5))[0])
            if mrng.random() < 0.06:
                flags.add("\\Flagged")
                folders.append(STARRED)
        if kind not in ("spam", "trash"):
            folders.append(ALL_MAIL)
        messages.append(Message(number, content, tuple(dict.fromkeys(folders)), tuple(sorted(flags)), when))
    return Account(user, tuple(messages), labels=tuple(labels))


_MAILDIR_FLAGS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S"}


def maildir_files(account: Account) -> dict[str, tuple[bytes, int]]:
    """The account as the provider's Dovecot keeps it (``LAYOUT=fs``: a directory per level, so a name may hold a
    ``.`` as Gmail's labels may; names in modified UTF-7; INBOX at the top): each file's path under the Maildir, its
    bytes and its modification time (the message's arrival).

    >>> files = maildir_files(generate(count=3, seed=2))
    >>> sorted({path.rsplit("/", 2)[0] for path in files} & {"[Cloud]/All Mail", "Fam&AO0-lia", "cur"})
    ['Fam&AO0-lia', '[Cloud]/All Mail', 'cur']
    """
    files: dict[str, tuple[bytes, int]] = {}
    for message in account.messages:
        flags = "".join(sorted(_MAILDIR_FLAGS[f] for f in message.flags))
        stamp = int(message.received.timestamp())
        name = f"{stamp}.M{message.number}P1.cloud,S={len(message.content)}:2,{flags}"
        for folder in message.folders:
            files[f"{_folder_dir(folder)}cur/{name}"] = (message.content, stamp)
    for folder in account.folders():
        for sub in ("cur", "new", "tmp"):
            files.setdefault(f"{_folder_dir(folder)}{sub}/", (b"", 0))
    for sub in ("cur", "new", "tmp"):
        files.setdefault(f"{sub}/", (b"", 0))
    return files


def _folder_dir(folder: str) -> str:
    """Where ``LAYOUT=fs`` keeps a folder under the Maildir: ``""`` for INBOX, ``"Work/Projects/"`` for a label."""
    return "" if folder == "INBOX" else "".join(mutf7(part) + "/" for part in folder.split(SEPARATOR))


_FROM_LINE = re.compile(rb">*From ")
_TAKEOUT_LABELS = {"INBOX": "Inbox", SENT: "Sent", DRAFTS: "Drafts", SPAM: "Spam", TRASH: "Trash", STARRED: "Starred"}


def takeout_mbox(account: Account) -> bytes:
    r"""The account as a Takeout-style export: one mbox, each message once with its labels in ``X-Gmail-Labels``
    (non-ASCII labels MIME-encoded, as the export writes some), ``From `` lines escaped the mboxrd way.

    >>> mbox = takeout_mbox(generate(count=5, seed=3))
    >>> mbox.count(b"\nX-Gmail-Labels: ") + mbox.startswith(b"X-Gmail-Labels: "), mbox.count(b"\nFrom ") + 1
    (5, 5)
    """
    chunks = []
    for message in account.messages:
        labels = [_TAKEOUT_LABELS.get(f, f) for f in message.folders if f != ALL_MAIL]
        labels += ["Opened"] if "\\Seen" in message.flags else ["Unread"]
        value = ",".join(_header(label) if not label.isascii() else label for label in labels)
        stamp = message.received.strftime("%a %b %d %H:%M:%S %Y")
        # mboxrd: a line that reads "From " after any number of ">" gets one more ">".
        body = b"\n".join(b">" + line if _FROM_LINE.match(line) else line for line in message.content.split(b"\n"))
        chunks.append(f"From {message.number}@xxx {stamp}\nX-Gmail-Labels: {value}\n".encode() + body)
    return b"\n".join(chunks)
