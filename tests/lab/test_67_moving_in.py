"""Moving in, end to end on a finished lab server: the cloud account (a few hundred messages, every shape: labels
nested and non-ASCII, one message under several labels, archived ones only in All Mail, flags, a broken MIME header)
comes home with ``doveadm sync``; inventories taken from the outside host over IMAP, as a mail program sees the
accounts, are compared folder by folder; a second run copies nothing; a message that reached the provider after the
first sync is home after the final one, once; finishing puts Sent and Drafts where the mail program looks and the
archived messages into Archive, and refuses to sync again; a sync killed, or whose provider becomes unreachable, or
whose disk fills up half way says so and resumes, nothing lost or doubled; a label holding a dot comes home renamed,
two that would meet are refused (these on trixie: the notebook, replayed under nbval on every release, takes the
same steps and checks). On every
release: a wrong app password changes nothing (Dovecot 2.3 panics after it), a Takeout-style export is filed by its
labels and importing it twice brings nothing twice, and the chapter's notebook replays with its stored outputs.
"""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from mailkit.clients.inventory import Inventory, MessageKey, take_inventory
from mailkit.core import engine
from mailkit.core.errors import MailkitError
from mailkit.core.mail_layout import LAYOUT
from mailkit.core.resources import Packages
from mailkit.core.ssh import Connection
from mailkit.core.values import EmailAddress, Hostname, Password
from mailkit.guide import cut_syncs, moving_in, takeout
from mailkit.lab import cloud_account, cloud_provider, network, small_disk
from mailkit.lab.lab import Lab
from mailkit.lab.lab_target import lab_connection
from mailkit.lab.layout import HOSTS
from tests.replay import NOTEBOOKS, replay

pytestmark = pytest.mark.lab
USER = EmailAddress("alice@example.org")
MAIL = HOSTS["mail"]
LEFT = set(moving_in.LEFT_AT_PROVIDER)
NOTEBOOK = NOTEBOOKS / "06-moving-in.ipynb"


@dataclass
class Move:
    mail: Connection
    outside: Connection
    old: moving_in.OldAccount
    home_password: Password

    def source(self) -> Inventory:
        return take_inventory(self.outside, self.old.host, str(self.old.user), self.old.password)

    def home(self) -> Inventory:
        return take_inventory(self.outside, "mail.example.org", str(USER), self.home_password)


@pytest.fixture
def trixie(lab: Lab) -> None:
    """Named before ``move``: a test skipped on this release costs no reset."""
    if lab.status()["release"] != "trixie":
        pytest.skip("measured on trixie; the chapter's notebook replays the same steps on every release (nbval)")


@pytest.fixture
def move(lab: Lab) -> Iterator[Move]:
    """A finished server, and the cloud provider with the account as generated (whatever ran before)."""
    lab.reset(to_part=4)
    password = Password("lab-app-password-" + lab.passwords(["cloud"])["cloud"].reveal()[:8])
    mail, outside = lab_connection("mail"), lab_connection("outside")
    try:
        account = cloud_provider.setup(outside, lab.ca, cloud_account.generate(count=300, seed=1), password)
        # A host just booted from a snapshot: its resolver answers for the provider before a sync is timed or cut.
        mail.run(["sh", "-c", f"for i in $(seq 60); do getent hosts {account.host} >/dev/null && exit 0; sleep 0.5; "
                  f"done; echo 'no answer for {account.host}' >&2; exit 1"])  # fmt: skip
        old = moving_in.OldAccount(Hostname(account.host), EmailAddress(account.user), password)
        yield Move(mail, outside, old, lab.passwords([str(USER)])[str(USER)])
    finally:
        mail.close()
        outside.close()


def _kept(source: Inventory) -> list[str]:
    """The provider's folders the sync brings home."""
    return sorted(name for name, f in source.folders.items() if not set(f.special_use) & LEFT)


def _state(inventory: Inventory) -> dict[str, Counter[MessageKey]]:
    return {name: inventory.keys(name) for name in inventory.folders}


def test_the_cloud_account_comes_home_folder_by_folder_once_and_finishes_in_place(trixie: None, move: Move) -> None:
    source, before = move.source(), move.home()
    assert source.count() > 600 and source.with_special_use("\\All") == [cloud_account.ALL_MAIL]

    moving_in.sync(move.mail, move.old, USER)
    first = move.home()
    for name in _kept(source):
        expected = source.keys(name) + (before.keys(name) if name == "INBOX" else Counter())
        assert first.keys(name) == expected, f"{name}: the same messages, none lost, none doubled"
        home_flags = first.flags(name)
        assert all(home_flags[k] == f for k, f in source.flags(name).items()), f"{name}: flags came along"
    for name, folder in source.folders.items():
        if set(folder.special_use) & LEFT:
            assert name not in first.folders, f"{name} ({folder.special_use}) stays at the provider"
    assert {"Família", "Rechnungen/2024", "日本語"} <= set(first.folders), "the labels, as a mail program lists them"

    moving_in.sync(move.mail, move.old, USER)
    assert _state(move.home()) == _state(first), "a second run copies nothing"

    late = b"From: dana@example.net\nTo: alice@cloud.example.net\nSubject: sent before the MX moved\n"
    late += b"Message-ID: <late-1@example.net>\n\nStill at the old provider.\n"
    cloud_provider.deliver(move.outside, str(move.old.user), late)
    moving_in.sync(move.mail, move.old, USER)
    final = move.home()
    arrived = [k for k in final.keys("INBOX") if k.message_id == "<late-1@example.net>"]
    assert len(arrived) == 1 and final.keys("INBOX")[arrived[0]] == 1, "the straggler is home, once"

    source = move.source()
    plan = moving_in.plan_finish(source, final)
    assert [(m.source, m.into) for m in plan.merges] == [
        (cloud_account.DRAFTS, "Drafts"),
        (cloud_account.SENT, "Sent"),
    ], plan.lines()
    elsewhere = {k for name in _kept(source) for k in source.keys(name)}
    archived = {e.key for e in source.folders[cloud_account.ALL_MAIL].entries} - elsewhere
    assert archived and len(plan.archive_uids) == len(archived), plan.lines()

    moving_in.finish(move.mail, move.old, USER, plan)
    done = move.home()
    assert done.keys(moving_in.ARCHIVE) == Counter(archived), "every archived message home, once"
    assert done.keys("Sent") == final.keys("Sent") + source.keys(cloud_account.SENT)
    assert done.keys("Drafts") == final.keys("Drafts") + source.keys(cloud_account.DRAFTS)
    assert not [name for name in done.folders if name.startswith("[Cloud]")], sorted(done.folders)
    everything = Counter({k: 1 for name in done.folders for k in done.keys(name)})
    assert set(everything) >= elsewhere | archived, "every message the provider showed outside spam and trash"
    assert moving_in.plan_finish(source, done).lines() == ["no change"]
    with pytest.raises(MailkitError, match="was finished"):
        moving_in.sync(move.mail, move.old, USER)


def test_a_wrong_app_password_is_a_clear_error_and_changes_nothing(move: Move) -> None:
    before = _state(move.home())
    wrong = moving_in.OldAccount(move.old.host, move.old.user, Password("not-the-app-password"))
    with pytest.raises(MailkitError, match=r"refused the login|authenticat"):
        moving_in.sync(move.mail, wrong, USER)
    assert _state(move.home()) == before


def test_the_moving_in_notebook_replays_with_its_stored_outputs(lab: Lab) -> None:
    lab.reset(to_part=4)  # the finished server, as a reader comes to this chapter
    replay([NOTEBOOK])


def _large_account(move: Move, lab: Lab) -> tuple[Inventory, Inventory]:
    """The account with three 10-25 MB attachments at the provider (a sync of seconds, to stop half way); the
    provider's inventory and the home mailbox's before the sync."""
    with lab_connection("outside") as outside:
        cloud_provider.setup(outside, lab.ca, cloud_account.generate(count=300, seed=2, large=3), move.old.password)
    return move.source(), move.home()


def _stopped_half_way(source: Inventory, before: Inventory, partial: Inventory) -> None:
    expected = sum(sum(source.keys(name).values()) for name in _kept(source))
    copied = partial.count() - before.count()
    assert 0 < copied < expected, f"the stop must fall half way: {copied} of {expected} copied"


def _killed_sync(move: Move, killer: list[str]) -> None:
    """The sync as :func:`moving_in.sync` runs it (its process noted first), under ``killer``, which must kill it."""
    argv = [*killer, *cut_syncs.noted(USER, moving_in.sync_command(USER))]
    killed = moving_in.run_with_settings(move.mail, move.old, moving_in.dovecot_major(move.mail), argv, timeout=120)
    assert killed.exited == 137, (killed.exited, killed.stderr[-500:])


def test_a_sync_cut_off_half_way_resumes_without_losing_or_doubling_a_message(
    trixie: None, move: Move, lab: Lab
) -> None:
    source, before = _large_account(move, lab)
    _killed_sync(move, ["timeout", "-s", "KILL", "0.8"])
    _stopped_half_way(source, before, move.home())

    moving_in.sync(move.mail, move.old, USER)
    rows = moving_in.sync_checks(source, before, move.home())
    assert [r for r in rows if not r.ok] == [], "after the cut, one more run: everything, once"
    assert cut_syncs.noted_runs(move.mail, USER) == set(), "a run that ended well clears the note"


def test_a_sync_killed_between_saving_files_and_recording_them_leaves_no_second_copy(
    trixie: None, move: Move, lab: Lab
) -> None:
    """The narrowest cut, where a power cut may fall: Dovecot has moved a batch's files into the Maildir and not yet
    written them into dovecot-uidlist. strace kills the sync as it starts its 75th rename(2): creating the folders
    takes about 60, then come the files of the first folder's first batch, one rename each."""
    source, before = _large_account(move, lab)
    engine.apply(move.mail, [Packages(("strace",))])
    _killed_sync(
        move, ["strace", "-f", "-o", "/dev/null", "-e", "trace=rename", "-e", "inject=rename:signal=KILL:when=75"]
    )
    runs = cut_syncs.noted_runs(move.mail, USER)
    left = [r for r in cut_syncs.stored(move.mail, USER) if r.saved_by() in runs]
    assert left, "the kill must fall between the two steps: files saved and never recorded"
    assert all(r.named_by_file() for r in left), left[:3]

    moving_in.sync(move.mail, move.old, USER)
    rows = moving_in.sync_checks(source, before, move.home())
    assert [r for r in rows if not r.ok] == [], f"{len(left)} saved and not recorded; one more run: everything, once"
    kept = {(r.mailbox, r.uid) for r in cut_syncs.stored(move.mail, USER)}
    assert not kept & {(r.mailbox, r.uid) for r in left}, "the second copies are gone, not the recorded ones"


def _filed(message: cloud_account.Message) -> tuple[list[str], set[str]]:
    """Where a message of the account belongs at home after an import of the export, and its flags there: worked
    out from the generator's own truth, not from the importer."""
    if {cloud_account.SPAM, cloud_account.TRASH} & set(message.folders):
        return [], set()
    home_names = {"INBOX": "INBOX", cloud_account.SENT: "Sent", cloud_account.DRAFTS: "Drafts"}
    skipped = {cloud_account.ALL_MAIL, cloud_account.STARRED}
    folders = [home_names.get(f, f) for f in message.folders if f not in skipped] or [moving_in.ARCHIVE]
    return folders, set(message.flags) & {"\\Seen", "\\Flagged"}  # what an export keeps of the flags


def test_a_takeout_export_files_each_label_and_importing_it_again_brings_nothing(move: Move, lab: Lab) -> None:
    bob = EmailAddress("bob@example.org")
    password = lab.passwords([str(bob)])[str(bob)]

    def home() -> Inventory:
        return take_inventory(move.outside, "mail.example.org", str(bob), password)

    account = cloud_account.generate(count=300, seed=3)
    messages = list(takeout.read_export(io.BytesIO(cloud_account.takeout_mbox(account))))
    before = home()
    copies = takeout.import_all(move.mail, bob, messages, before, batch_bytes=2_000_000)  # several batches
    after = home()
    expected: dict[str, Counter[MessageKey]] = {}
    for message in account.messages:
        folders, flags = _filed(message)
        key = takeout.message_key(message.content)
        for folder in folders:
            expected.setdefault(folder, Counter())[key] += 1
            assert after.flags(folder).get(key) is not None and set(after.flags(folder)[key]) == flags, folder
    assert copies == sum(sum(c.values()) for c in expected.values())
    for folder in set(expected) | set(after.folders):
        assert after.keys(folder) == before.keys(folder) + expected.get(folder, Counter()), folder

    assert takeout.import_all(move.mail, bob, messages, after) == 0
    assert _state(home()) == _state(after), "the same export twice: nothing twice"


def _messages_on_disk(mail: Connection, user: EmailAddress) -> int:
    """Message files in ``user``'s Maildir, every folder (what a sync has written so far)."""
    script = 'find "$1" -type f -path "*/cur/*" | wc -l'
    return int(mail.run(["sh", "-c", script, "sh", LAYOUT.maildir(user)]).stdout)


def test_the_provider_unreachable_half_way_is_a_clear_error_and_the_next_run_resumes(
    trixie: None, move: Move, lab: Lab
) -> None:
    source, before = _large_account(move, lab)
    on_disk = _messages_on_disk(move.mail, USER)
    failed: list[BaseException] = []

    def first_sync() -> None:
        with lab_connection("mail") as mail:
            try:
                moving_in.sync(mail, move.old, USER)
            except MailkitError as error:
                failed.append(error)

    syncing = threading.Thread(target=first_sync)
    syncing.start()
    try:  # the line to the provider is cut once the first messages are home
        while _messages_on_disk(move.mail, USER) < on_disk + 20 and syncing.is_alive():
            time.sleep(0.05)
        network.block_outbound(MAIL, port=move.old.port)
        syncing.join(timeout=120)
    finally:
        network.unblock_outbound(MAIL, port=move.old.port)
    assert not syncing.is_alive() and failed, "a sync whose provider went away must fail, not hang or succeed"
    assert str(failed[0]).startswith(f"doveadm sync from {move.old.host}: "), failed[0]
    _stopped_half_way(source, before, move.home())

    moving_in.sync(move.mail, move.old, USER)
    rows = moving_in.sync_checks(source, before, move.home())
    assert [r for r in rows if not r.ok] == [], "the line back, one more run: everything, once"


def test_a_label_holding_a_dot_comes_home_renamed_and_two_that_would_meet_are_refused(
    trixie: None, move: Move, lab: Lab
) -> None:
    labels = (*cloud_account.LABELS, "Releases", "Releases.2024", "Releases_2024")
    account = cloud_account.generate(count=120, seed=4, labels=labels)
    with lab_connection("outside") as outside:
        cloud_provider.setup(outside, lab.ca, account, move.old.password)
    before = move.home()
    with pytest.raises(MailkitError, match=r"'Releases\.2024' and 'Releases_2024' would all be 'Releases_2024'"):
        moving_in.sync(move.mail, move.old, USER)
    assert _state(move.home()) == _state(before), "refused before anything was copied"

    # The reader renames one of them at the provider, as its web mail would, and syncs.
    move.outside.run(["doveadm", "mailbox", "rename", "-u", account.user, "Releases_2024", "Releases 2024"])
    source = move.source()
    assert {"Releases.2024", "Releases 2024"} <= set(source.folders)
    moving_in.sync(move.mail, move.old, USER)
    rows = moving_in.sync_checks(source, before, move.home())
    assert [r for r in rows if not r.ok] == []
    renamed = [r for r in rows if r.name == "Releases.2024 (here Releases_2024)"]
    assert renamed and sum(source.keys("Releases.2024").values()) > 0, [r.name for r in rows]
    assert "Releases.2024" not in move.home().folders


def test_a_full_disk_stops_the_sync_with_a_clear_error_and_it_resumes_once_there_is_room(
    trixie: None, move: Move, lab: Lab
) -> None:
    bob = EmailAddress("bob@example.org")
    password = lab.passwords([str(bob)])[str(bob)]

    def home() -> Inventory:
        return take_inventory(move.outside, "mail.example.org", str(bob), password)

    source = move.source()  # about 12 MB of mail; bob's Maildir gets a filesystem of 4
    small_disk.mount(MAIL, LAYOUT.maildir(bob), 4, (LAYOUT.vmail_uid, LAYOUT.vmail_uid))
    before = home()
    with pytest.raises(MailkitError, match=r"the disk that holds the mail here is full: free space"):
        moving_in.sync(move.mail, move.old, bob)
    _stopped_half_way(source, before, home())  # with what fitted kept

    small_disk.resize(MAIL, LAYOUT.maildir(bob), 256)  # space freed
    moving_in.sync(move.mail, move.old, bob)
    rows = moving_in.sync_checks(source, before, home())
    assert [r for r in rows if not r.ok] == [], "once there is room, one more run: everything, once"
