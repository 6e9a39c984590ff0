"""What a sync cut off half way left behind: which messages are second copies, and that only those are removed.
(The real cut, by a kill between Dovecot's two steps: tests/lab/test_67_moving_in.py.)"""

from __future__ import annotations

import pytest

from mailkit.core.errors import MailkitError
from mailkit.core.result import Result
from mailkit.core.values import EmailAddress
from mailkit.guide.cut_syncs import Stored, note_path, parse_listing, remove_left_behind, unrecorded

USER = EmailAddress("alice@example.org")
FORCED = "4b1f0a3c29d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4"  # an ID guid-forced made from the provider's copy
ORPHAN = "1796597078.M139526P257.mail"  # a file named by process 257 and never recorded
DELIVERED = "1796595179.V35I2dfabbM728838.mail"  # a message delivered here (LMTP names its files so)


def test_a_file_of_a_noted_run_with_a_recorded_message_of_its_size_beside_it_is_a_candidate() -> None:
    orphan, twin = Stored("INBOX", 40, ORPHAN, 5795), Stored("INBOX", 12, FORCED, 5795)
    assert unrecorded([orphan, twin], {257}) == {orphan: [twin]}


@pytest.mark.parametrize(
    ("rows", "why"),
    [
        ([Stored("INBOX", 40, ORPHAN, 5795)], "no other copy: it may be the only one"),
        ([Stored("INBOX", 40, ORPHAN, 5795), Stored("Work", 3, FORCED, 5795)], "the copy is in another folder"),
        ([Stored("INBOX", 40, ORPHAN, 5795), Stored("INBOX", 3, FORCED, 5796)], "the copy has another size"),
        ([Stored("INBOX", 40, ORPHAN, 5795), Stored("INBOX", 3, DELIVERED, 5795)], "the other has no provider ID"),
        ([Stored("INBOX", 40, ORPHAN.replace("P257", "P258"), 5795), Stored("INBOX", 3, FORCED, 5795)], "not noted"),
        ([Stored("INBOX", 40, FORCED, 5795), Stored("INBOX", 3, FORCED, 5795)], "both were recorded"),
    ],
)
def test_anything_else_is_no_candidate(rows: list[Stored], why: str) -> None:
    assert unrecorded(rows, {257}) == {}, why


def test_a_listing_that_is_not_what_was_asked_for_is_an_error() -> None:
    assert parse_listing("uid\tguid\tsize.physical\tmailbox\n") == []
    assert parse_listing("uid\tguid\tsize.physical\tmailbox\n1\tg\t9\tA\tB\n") == [Stored("A\tB", 1, "g", 9)]
    with pytest.raises(MailkitError, match="not 'uid, guid, size, mailbox'"):
        parse_listing("uid\tguid\tsize.physical\tmailbox\nx\tg\t9\tINBOX\n")


class Server:
    """The mail server as :func:`remove_left_behind` asks it: the note, the listing, the texts' hashes."""

    def __init__(self, note: str | None, listing: list[Stored], hashes: dict[int, str]) -> None:
        self.note, self.listing, self.hashes = note, listing, hashes
        self.asked: list[list[str]] = []

    def run(self, argv: list[str], **_: object) -> Result:
        self.asked.append(argv)
        if argv[0] == "cat":
            return Result("cat", self.note or "", "", 0 if self.note is not None else 1)
        if "fetch" in argv:
            rows = "".join(f"{r.uid}\t{r.guid}\t{r.size}\t{r.mailbox}\n" for r in self.listing)
            return Result("doveadm", "uid\tguid\tsize.physical\tmailbox\n" + rows, "", 0)
        if argv[0] == "sh":
            uids = [int(u) for u in argv[6:]]
            return Result("sh", "".join(f"{u} {self.hashes[u]}  -\n" for u in uids), "", 0)
        return Result(" ".join(argv), "", "", 0)

    def expunged(self) -> list[str]:
        return [a[-1] for a in self.asked if a[:2] == ["doveadm", "expunge"]]


def test_only_a_second_copy_of_the_same_text_is_removed_and_the_note_goes() -> None:
    rows = [
        Stored("INBOX", 40, ORPHAN, 5795),
        Stored("INBOX", 41, ORPHAN.replace("M139526", "M139527"), 5795),
        Stored("INBOX", 12, FORCED, 5795),
    ]
    server = Server("257\n", rows, {40: "aa", 41: "bb", 12: "aa"})
    assert remove_left_behind(server, USER) == 1  # type: ignore[arg-type]
    assert server.expunged() == ["40"], "41 has another text: it may be the only copy of its message"
    assert server.asked[-1] == ["rm", "-f", "--", note_path(USER)]


def test_without_a_note_nothing_is_read_or_removed() -> None:
    server = Server(None, [Stored("INBOX", 40, ORPHAN, 5795), Stored("INBOX", 12, FORCED, 5795)], {})
    assert remove_left_behind(server, USER) == 0  # type: ignore[arg-type]
    assert [a[0] for a in server.asked] == ["cat", "rm"]
