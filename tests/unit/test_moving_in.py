"""Moving in, mailkit's own logic: the finishing plan from two inventories, the app password's checks, the
inventory answer read as hostile, the cloud account's shape."""

from __future__ import annotations

import pytest

from mailkit.clients.inventory import Entry, Folder, Inventory, MessageKey, parse_answer
from mailkit.core.errors import MailkitError
from mailkit.core.imap_names import mutf7
from mailkit.core.result import Result
from mailkit.core.values import EmailAddress, Hostname, Password, ValueRejected
from mailkit.guide.moving_in import ARCHIVE, Finish, finish, plan_finish, sync_checks, sync_command
from mailkit.lab import cloud_account
from mailkit.remote.imap_inventory import _entries, decode_mutf7
from mailkit.server.old_account import OldAccount


def box(flags: tuple[str, ...], *ids: str) -> Folder:
    return Folder(flags, tuple(Entry(MessageKey(i, "h" + i), (), 1, n) for n, i in enumerate(ids, 1)))


def test_special_folders_merge_into_the_servers_own_and_archived_mail_comes_home_once() -> None:
    source = Inventory(
        "/",
        {
            "INBOX": box((), "a"),
            "[C]/Sent": box(("\\Sent",), "s"),
            "[C]/Spam": box(("\\Junk",), "j"),
            "[C]/All": box(("\\All",), "a", "s", "z", "y"),
            "Label": box((), "y"),
        },
    )
    home = Inventory("/", {"INBOX": box((), "a"), "Sent": box(("\\Sent",)), "[C]/Sent": box((), "s")})
    plan = plan_finish(source, home)
    assert [(m.source, m.into) for m in plan.merges] == [("[C]/Sent", "Sent")]
    assert plan.all_mail == "[C]/All" and plan.archive_uids == (3,), "only z is in All Mail alone; y has a label"
    assert plan.lines()[-1] == f"bring 1 message(s) found only in '[C]/All' into '{ARCHIVE}'"
    # Finished once (z now in Archive, Sent merged): the same plan again is no change.
    done = Inventory("/", {"INBOX": box((), "a"), "Sent": box(("\\Sent",), "s"), ARCHIVE: box((), "z")})
    assert plan_finish(source, done).lines() == ["no change"]


def test_a_folder_left_at_the_provider_is_never_merged_even_when_it_came_home() -> None:
    source = Inventory("/", {"[C]/Spam": box(("\\Junk",), "j")})
    home = Inventory("/", {"Junk": box(("\\Junk",)), "[C]/Spam": box((), "j")})
    assert plan_finish(source, home).lines() == ["no change"]


@pytest.mark.parametrize("password", ["50%-off-password", 'quote"password12', "back\\slashpassword"])
def test_an_app_password_dovecot_would_misread_is_refused_before_anything_runs(password: str) -> None:
    with pytest.raises(ValueRejected, match="make an app password without it"):
        OldAccount(Hostname("imap.cloud.example.net"), EmailAddress("a@cloud.example.net"), Password(password))


def test_the_sync_leaves_the_copies_and_the_thrown_away_at_the_provider_and_never_deletes_at_home() -> None:
    argv = sync_command(EmailAddress("alice@example.org"))
    assert argv[3:6] == ["sync", "-1", "-R"], "one way, from the provider"
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-x"] == ["\\All", "\\Flagged", "\\Junk", "\\Trash"]


def test_an_inventory_answer_out_of_bounds_is_an_error_not_a_belief() -> None:
    good = {"message_id": "<a@b>", "body_sha256": "00", "flags": [], "size": 1, "uid": 1}
    for bad in (
        {"folders": {"INBOX": {"messages": [{**good, "size": -1}]}}},
        {"folders": {"INBOX": {"messages": [{**good, "uid": 2**40}]}}},
        {"folders": {"INBOX": {"messages": [{**good, "message_id": "x" * 5000}]}}},
        {"folders": {"INBOX": "not a folder"}},
        {"folders": {f"f{i}": {"messages": []} for i in range(1001)}},
    ):
        with pytest.raises(MailkitError):
            parse_answer({"ok": True, "separator": "/", **bad})


def test_fetch_responses_become_entries_and_line_ends_do_not_change_the_hash() -> None:
    crlf = [
        b"1 (UID 7 FLAGS (\\Seen \\Recent) RFC822.SIZE 40 BODY[HEADER.FIELDS (MESSAGE-ID)] {22}",
        b"Message-ID: <x@y>\r\n\r\n",
        b" BODY[TEXT] {6}",
        b"hi\r\n\r\n",
    ]
    lf = [
        b"1 (UID 9 FLAGS (\\Seen) RFC822.SIZE 38 BODY[HEADER.FIELDS (MESSAGE-ID)] {19}",
        b"Message-ID: <x@y>\n\n",
        b" BODY[TEXT] {4}",
        b"hi\n\n",
    ]
    (a,), (b,) = _entries(crlf), _entries(lf)
    assert a["message_id"] == b["message_id"] == "<x@y>" and a["body_sha256"] == b["body_sha256"]
    assert a["flags"] == ["\\Seen"] and a["uid"] == 7


@pytest.mark.parametrize("name", ["Família", "日本語", "A&B", "[Cloud]/All Mail", "Ünïcödé & more"])
def test_folder_names_survive_modified_utf7_both_ways(name: str) -> None:
    assert decode_mutf7(mutf7(name)) == name


def test_the_cloud_account_has_every_shape_the_move_must_handle() -> None:
    account = cloud_account.generate(count=300, seed=1)
    folders = account.folders()
    assert {"Família", "Rechnungen/2024", "日本語", cloud_account.ALL_MAIL} <= set(folders)
    archived = [m for m in account.messages if m.folders == (cloud_account.ALL_MAIL,)]
    multi = [m for m in account.messages if len(set(m.folders) - {cloud_account.ALL_MAIL}) >= 2]
    flags = {f for m in account.messages for f in m.flags}
    assert archived and multi and flags == {"\\Seen", "\\Flagged", "\\Answered", "\\Draft"}
    assert len({m.message_id for m in account.messages}) == 300, "every message has a Message-ID of its own"
    assert cloud_account.generate(count=300, seed=1) == account, "the same seed, the same account"
    mbox = cloud_account.takeout_mbox(account)
    assert mbox.count(b"X-Gmail-Labels: ") == 300 and b"=?utf-8?" in mbox


class _Server:
    """Answers like a trixie mail server and records the commands (a fake for finish's own logic only)."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def run(self, argv: list[str], **_: object) -> Result:
        self.commands.append(list(argv))
        return Result(" ".join(argv), "2.4.1 (abc)\n" if argv[:2] == ["dovecot", "--version"] else "", "", 0)


def test_finishing_asks_for_archived_messages_a_few_hundred_uids_at_a_time_then_marks_the_move_done() -> None:
    server = _Server()
    old = OldAccount(Hostname("imap.cloud.example.net"), EmailAddress("a@cloud.example.net"), Password("x" * 16))
    plan = Finish((), "[C]/All", tuple(range(1, 2400, 2)))  # 1,200 UIDs, none adjacent
    finish(server, old, EmailAddress("alice@example.org"), plan)  # type: ignore[arg-type]
    imports = [c for c in server.commands if "import" in c]
    assert len(imports) == 3 and all(c[c.index("uid") + 1].count(",") < 500 for c in imports)
    assert any(c[:3] == ["doveadm", "move", "-u"] and c[4] == "Archive" for c in server.commands)
    assert server.commands[-1][:2] == ["sh", "-c"] and "moved-in/alice@example.org" in server.commands[-1][-1]


def test_a_folder_renamed_on_its_way_home_is_checked_under_its_new_name() -> None:
    key = MessageKey("<a@x>", "00")
    source = Inventory("/", {"Releases.2024": Folder((), (Entry(key, ("\\Seen",), 1),))})
    home = Inventory("/", {"Releases_2024": Folder((), (Entry(key, ("\\Seen",), 7),))})
    (row, left) = sync_checks(source, Inventory("/", {}), home)
    assert (row.name, row.ok, left.ok) == ("Releases.2024 (here Releases_2024)", True, True)
    nested = Inventory("/", {"Releases/2024": Folder((), (Entry(key, ("\\Seen",), 7),))})
    assert not sync_checks(source, Inventory("/", {}), nested)[0].ok, "made a folder 2024 inside Releases: red"
