"""A sync cut off half way (a power cut, the process killed): the second copies it leaves behind, found and removed.

Dovecot saves a batch of messages into a Maildir in two steps: it moves the files into ``cur/`` (or ``new/``), then
records them in ``dovecot-uidlist`` with the ID ``guid-forced`` made for each from the provider's copy. A run killed
between the two leaves files nobody recorded. Dovecot finds them later and lists them under new UIDs as messages of
their own, each with its file's name as its ID; the next run does not know them as copies and copies those messages
again. (Stopped any other way, a run rolls back what it had not recorded, and ``guid-forced`` does the rest.)

So each run is noted on the server before it starts: the number of its process, which Dovecot writes into the name of
every file that process saves (``1796597078.M139526P257.mail``: P257). The note goes when a run ends well. A run that
finds notes of earlier runs removes, after its own sync, a message only when all of this holds:

- its file was named by a noted run (``P`` and the number);
- it has no ID from the provider: Dovecot knows it by its file's name, so it was never recorded;
- the same folder holds a message of the same size and the same text that has one.

Anything else stays: a message that may be the only copy at home is never removed.

>>> rows = [Stored("INBOX", 40, "1796597078.M139526P257.mail", 5795),
...         Stored("INBOX", 41, "4b1f0a3c29d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4", 5795),
...         Stored("INBOX", 42, "1796595179.V35I2dfabbM728838.mail", 5795)]
>>> [(r.uid, [t.uid for t in twins]) for r, twins in unrecorded(rows, {257}).items()]
[(40, [41])]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailkit.core.engine import STATE_DIR
from mailkit.core.errors import MailkitError
from mailkit.core.ssh import Connection
from mailkit.core.values import EmailAddress

#: A Maildir file name as Dovecot makes one for a message it saves: seconds, ``M`` microseconds, ``P`` its process.
_SAVED_NAME = re.compile(r"^[0-9]+\.M[0-9]+P([0-9]+)\.")
#: Any Maildir file name (seconds, a unique part, the host): what Dovecot takes as the ID of a message it has no other
#: for. An ID made by ``guid-forced`` is hexadecimal, without a dot.
_FILE_NAME = re.compile(r"^[0-9]+\.[^.]+\.")
#: At most this many runs are remembered, and this many messages read from a mailbox's listing.
MAX_NOTED_RUNS = 1000
MAX_STORED = 1_000_000


@dataclass(frozen=True)
class Stored:
    """A message at home as Dovecot lists it: its folder, UID, ID (``guid``) and size in bytes."""

    mailbox: str
    uid: int
    guid: str
    size: int

    def saved_by(self) -> int | None:
        """The process whose save named this message's file, when its ID is that file's name (it was never recorded).

        >>> Stored("INBOX", 1, "1796597078.M139526P257.mail", 10).saved_by()
        257
        >>> Stored("INBOX", 2, "ab" * 20, 10).saved_by() is None
        True
        """
        found = _SAVED_NAME.match(self.guid)
        return int(found.group(1)) if found else None

    def named_by_file(self) -> bool:
        """Whether Dovecot knows this message only by its file's name (it has no ID from the provider)."""
        return _FILE_NAME.match(self.guid) is not None


def note_path(user: EmailAddress) -> str:
    """The server's note of ``user``'s runs that have not ended well (yet)."""
    return f"{STATE_DIR}/moving-in/{user}.runs"


#: Appends the number of this shell's process to the note (``$1``), then becomes the command: the number stays.
_NOTED = 'mkdir -p -m 700 -- "${1%/*}" && printf "%s\\n" "$$" >> "$1" && shift && exec "$@"'


def noted(user: EmailAddress, argv: list[str]) -> list[str]:
    """``argv`` run so that the number of its process is in the note first.

    >>> noted(EmailAddress("alice@example.org"), ["doveadm", "sync"])[4:]
    ['/var/lib/mailkit/moving-in/alice@example.org.runs', 'doveadm', 'sync']
    """
    return ["sh", "-c", _NOTED, "sh", note_path(user), *argv]


def noted_runs(mail: Connection, user: EmailAddress) -> set[int]:
    """The runs of ``user``'s sync noted and not ended well; none when there is no note."""
    read = mail.run(["cat", "--", note_path(user)], check=False, max_output=64 * 1024)
    lines = read.stdout.splitlines()[:MAX_NOTED_RUNS] if read.ok else []
    return {int(line) for line in lines if line.strip().isdigit()}


def parse_listing(text: str) -> list[Stored]:
    r"""``doveadm -f tab fetch 'uid guid size.physical mailbox'`` read, its heading line left out.

    >>> parse_listing("uid\tguid\tsize.physical\tmailbox\n7\tab12\t300\tWork/Projects\n")
    [Stored(mailbox='Work/Projects', uid=7, guid='ab12', size=300)]
    """
    rows = []
    for line in text.splitlines()[1 : MAX_STORED + 1]:
        fields = line.split("\t", 3)
        if len(fields) != 4 or not fields[0].isdigit() or not fields[2].isdigit():
            raise MailkitError(f"doveadm listed a message as {line[:200]!r}: not 'uid, guid, size, mailbox'")
        rows.append(Stored(fields[3], int(fields[0]), fields[1], int(fields[2])))
    return rows


def stored(mail: Connection, user: EmailAddress) -> list[Stored]:
    """Every message of ``user``'s mailboxes at home."""
    listed = mail.run(
        ["doveadm", "-f", "tab", "fetch", "-u", str(user), "uid guid size.physical mailbox", "all"], timeout=1800
    )
    return parse_listing(listed.stdout)


def unrecorded(rows: list[Stored], runs: set[int]) -> dict[Stored, list[Stored]]:
    """Messages saved by ``runs`` and never recorded, each with the messages of its folder and size that have an ID
    from the provider (the copies it may be a second one of); one with none is left out: it may be the only copy."""
    recorded: dict[tuple[str, int], list[Stored]] = {}
    for row in rows:
        if not row.named_by_file():
            recorded.setdefault((row.mailbox, row.size), []).append(row)
    found = {}
    for row in rows:
        if row.saved_by() in runs and (twins := recorded.get((row.mailbox, row.size))):
            found[row] = twins
    return found


#: Prints ``UID SHA256`` for each message ``$3...`` of mailbox ``$2`` of user ``$1``: its whole text, hashed.
_HASHES = """u=$1 box=$2
shift 2
for uid in "$@"; do
  printf '%s ' "$uid"
  doveadm fetch -u "$u" text mailbox "$box" uid "$uid" | sha256sum
done
"""


def text_hashes(mail: Connection, user: EmailAddress, mailbox: str, uids: list[int]) -> dict[int, str]:
    """The hash of each message's whole text, as Dovecot gives it (computed on the server: texts stay there)."""
    done = mail.run(["sh", "-c", _HASHES, "sh", str(user), mailbox, *map(str, sorted(set(uids)))], timeout=1800)
    hashes = {}
    for line in done.stdout.splitlines():
        uid, _, digest = line.partition(" ")
        if uid.isdigit():
            hashes[int(uid)] = digest.split()[0] if digest.split() else ""
    return hashes


def remove_left_behind(mail: Connection, user: EmailAddress) -> int:
    """After a sync that ended well: the second copies that noted runs left behind, removed; the note with them.
    Returns how many were removed (0, and nothing read, when no run was cut off)."""
    runs = noted_runs(mail, user)
    removed = 0
    if runs:
        by_mailbox: dict[str, dict[Stored, list[Stored]]] = {}
        for row, twins in unrecorded(stored(mail, user), runs).items():
            by_mailbox.setdefault(row.mailbox, {})[row] = twins
        for mailbox, found in sorted(by_mailbox.items()):
            uids = [r.uid for r in found] + [t.uid for twins in found.values() for t in twins]
            hashes = text_hashes(mail, user, mailbox, uids)
            for row, twins in sorted(found.items(), key=lambda item: item[0].uid):
                mine = hashes.get(row.uid)
                if mine and any(hashes.get(t.uid) == mine for t in twins):
                    mail.run(["doveadm", "expunge", "-u", str(user), "mailbox", mailbox, "uid", str(row.uid)])
                    removed += 1
    mail.run(["rm", "-f", "--", note_path(user)])
    return removed
