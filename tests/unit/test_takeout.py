"""Importing a Takeout-style export, mailkit's own logic: labels read (quoted, MIME-encoded), messages filed by their
labels, mboxrd escaping undone, the export's bounds enforced, the staging Maildir skipping what is home already."""

from __future__ import annotations

import io
import tarfile

import pytest

from mailkit.clients.inventory import Entry, Folder, Inventory
from mailkit.core.errors import MailkitError
from mailkit.core.result import Result
from mailkit.core.values import EmailAddress
from mailkit.guide import takeout
from mailkit.lab import cloud_account


def _export(*messages: bytes) -> io.BytesIO:
    return io.BytesIO(b"\n".join(b"From x@xxx Mon Jan  1 00:00:00 2024\n" + m for m in messages))


def test_every_generated_message_comes_out_of_the_export_as_it_went_in() -> None:
    account = cloud_account.generate(count=120, seed=4)
    exported = list(takeout.read_export(io.BytesIO(cloud_account.takeout_mbox(account))))
    assert [m.content for m in exported] == [m.content for m in account.messages]
    for original, message in zip(account.messages, exported, strict=True):
        assert message.key == takeout.message_key(original.content)
        if {cloud_account.SPAM, cloud_account.TRASH} & set(original.folders):
            assert message.folders == ()
        elif set(original.folders) == {cloud_account.ALL_MAIL}:
            assert message.folders == ("Archive",)
        assert ("\\Seen" in message.flags) == ("\\Seen" in original.flags)


def test_from_lines_in_a_body_survive_the_mbox_both_ways() -> None:
    body = b"Message-ID: <f@x>\n\nFrom here on\n>From there\nplain\n"
    mbox = b"From x@xxx Mon Jan  1 00:00:00 2024\nX-Gmail-Labels: Inbox\n"
    mbox += b"Message-ID: <f@x>\n\n>From here on\n>>From there\nplain\n"
    (message,) = takeout.read_export(io.BytesIO(mbox))
    assert message.content == body and message.folders == ("INBOX",)


def test_an_export_that_is_not_mbox_or_too_big_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MailkitError, match="not an mbox"):
        list(takeout.read_export(io.BytesIO(b"PK\x03\x04 a zip file\n")))
    monkeypatch.setattr(takeout, "MAX_MESSAGE", 100)
    with pytest.raises(MailkitError, match="larger than"):
        list(takeout.read_export(_export(b"Subject: big\n\n" + b"x" * 200 + b"\n")))
    monkeypatch.setattr(takeout, "MAX_PIECE", 64)
    endless = io.BytesIO(b"From x@xxx Mon Jan  1 00:00:00 2024\nSubject: " + b"y" * 10_000_000)
    with pytest.raises(MailkitError, match="larger than"):
        list(takeout.read_export(endless))
    assert endless.tell() < 1000, "a line without end is read in pieces, and no further than the limit"
    monkeypatch.setattr(takeout, "MAX_MESSAGES", 2)
    with pytest.raises(MailkitError, match="more than 2 messages"):
        list(takeout.read_export(_export(b"A: 1\n\n1\n", b"A: 2\n\n2\n", b"A: 3\n\n3\n")))


def test_labels_quoted_encoded_or_too_many() -> None:
    assert takeout.labels_of('Inbox,"Work, old",=?UTF-8?B?5pel5pys6Kqe?=') == ["Inbox", "Work, old", "日本語"]
    assert takeout.labels_of("=?bogus?Q?x?=") == ["=?bogus?Q?x?="], "a label that lies about its encoding stays"
    with pytest.raises(MailkitError, match="not a folder name"):
        takeout.labels_of("Inbox,=?utf-8?q?evil=0Aline?=")
    with pytest.raises(MailkitError, match="labels"):
        takeout.labels_of(",".join(f"l{i}" for i in range(200)))


def test_the_staging_maildir_leaves_out_what_is_home_already() -> None:
    (one, two) = takeout.read_export(_export(
        b"X-Gmail-Labels: Inbox,Opened\nMessage-ID: <1@x>\n\none\n",
        b"X-Gmail-Labels: Inbox,Starred,Rechnungen/2024\nMessage-ID: <2@x>\n\ntwo\n",
    ))  # fmt: skip
    home = Inventory("/", {"INBOX": Folder((), (Entry(one.key, ("\\Seen",), 1),))})
    staged, copies = takeout.staging_tar([one, two], home)
    with tarfile.open(fileobj=io.BytesIO(staged)) as tar:
        names = tar.getnames()
    files = [n for n in names if "/cur/" in n]
    assert copies == 2 and len(files) == 2, files
    assert any(n.startswith("Maildir/.Rechnungen.2024/cur/") and n.endswith(":2,F") for n in files)
    assert any(n.startswith("Maildir/cur/") and n.endswith(":2,F") for n in files), "two, in INBOX, starred"


def test_a_label_holding_a_dot_is_filed_as_the_sync_files_it_and_left_out_once_home() -> None:
    (one,) = takeout.read_export(_export(b"X-Gmail-Labels: Releases.2024,Inbox\nMessage-ID: <1@x>\n\none\n"))
    assert one.folders == ("Releases_2024", "INBOX"), "not a folder 2024 inside Releases, as Maildir++ would make it"
    staged, copies = takeout.staging_tar([one], Inventory("/", {}))
    assert copies == 2
    with tarfile.open(fileobj=io.BytesIO(staged)) as tar:
        assert any(n.startswith("Maildir/.Releases_2024/cur/") for n in tar.getnames())
    home = Inventory("/", {name: Folder((), (Entry(one.key, (), 1),)) for name in one.folders})
    assert takeout.staging_tar([one], home)[1] == 0, "a second import of the same export brings nothing twice"


class _Server:
    """Records what would be imported (a fake for the batching logic only: the lab test imports for real)."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def run(self, argv: list[str], *, input: bytes, check: bool, timeout: int) -> Result:
        with tarfile.open(fileobj=io.BytesIO(input)) as tar:
            self.batches.append(len([n for n in tar.getnames() if "/cur/" in n]))
        return Result(" ".join(argv), "", "", 0)


def test_a_large_export_goes_in_batches_and_nothing_new_means_no_import() -> None:
    account = cloud_account.generate(count=60, seed=5)
    messages = list(takeout.read_export(io.BytesIO(cloud_account.takeout_mbox(account))))
    server = _Server()
    copies = takeout.import_all(server, EmailAddress("bob@example.org"), messages, Inventory("/", {}), 50_000)  # type: ignore[arg-type]
    assert len(server.batches) > 2 and sum(server.batches) == copies > 60
    everything = Inventory("/", {f: Folder((), tuple(Entry(m.key, (), 1) for m in messages if f in m.folders))
                                 for m in messages for f in m.folders})  # fmt: skip
    server.batches.clear()
    assert takeout.import_all(server, EmailAddress("bob@example.org"), messages, everything) == 0  # type: ignore[arg-type]
    assert server.batches == [], "nothing to import: doveadm is not even called"


class _FullDisk(_Server):
    """The host's answer when the Maildir's disk fills up half way through a batch (words as Dovecot 2.4 writes)."""

    def run(self, argv: list[str], *, input: bytes, check: bool, timeout: int) -> Result:
        said = "doveadm(bob@example.org): Error: write(/var/vmail/.../tmp/1.mail) failed: No space left on device\n"
        return Result(" ".join(argv), "", said, 75)


def test_an_import_onto_a_full_disk_says_so_and_what_to_do() -> None:
    (one,) = takeout.read_export(_export(b"X-Gmail-Labels: Inbox\nMessage-ID: <1@x>\n\none\n"))
    with pytest.raises(
        MailkitError, match=r"the disk that holds the mail here is full: free space \('df -h /var/vmail'\)"
    ):
        takeout.import_all(_FullDisk(), EmailAddress("bob@example.org"), [one], Inventory("/", {}))  # type: ignore[arg-type]
