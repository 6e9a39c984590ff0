"""Mailbox files: parsing, the sender-login map, consistency, and part 2's parameters."""

from __future__ import annotations

import pytest

from mailkit.core.display import SideBySide
from mailkit.core.errors import StateConflict
from mailkit.core.facts import FileState
from mailkit.core.resources import unified_diff
from mailkit.core.resources.dovecot import HEADER, PasswdFile, PasswdUser, parse_passwd
from mailkit.core.values import Password, ValueRejected
from mailkit.guide.part1 import Part1
from mailkit.guide.part2 import Part2
from mailkit.server import mailboxes


def _files(boxes: dict[str, str], hashes: dict[str, str], senders: dict[str, str]) -> mailboxes.MailboxFiles:
    return mailboxes.MailboxFiles(boxes, hashes, senders, {})


def test_tables_and_passwd_files_are_parsed() -> None:
    assert mailboxes.parse_table("# c\n\nalice@example.org   example.org/alice/\n") == {
        "alice@example.org": "example.org/alice/"
    }
    assert parse_passwd("# c\nalice@example.org:{SHA512-CRYPT}$6$x$y::::\n") == {
        "alice@example.org": ("{SHA512-CRYPT}$6$x$y", "::::")
    }


def test_sender_logins_let_aliases_be_used_by_their_target_mailboxes() -> None:
    owners = mailboxes.sender_logins(
        ["alice@example.org", "bob@example.org"],
        {"info@example.org": ["bob@example.org"], "list@example.org": ["someone@example.net"]},
    )
    assert owners == {
        "alice@example.org": ["alice@example.org"],
        "bob@example.org": ["bob@example.org"],
        "info@example.org": ["bob@example.org"],
    }
    text = mailboxes.sender_map_content(owners)
    assert "info@example.org bob@example.org\n" in text


HASH_A, HASH_B = "{SHA512-CRYPT}$6$aaaa$hash", "{SHA512-CRYPT}$6$bbbb$hash"
CURRENT = FileState(
    f"{HEADER}a@example.org:{HASH_A}\nb@example.org:{HASH_B}::::::nologin=y reason=suspended\n".encode(),
    0o640,
    "root",
    "dovecot",
)


def test_passwd_file_keeps_hashes_and_extra_fields_and_never_shows_a_hash() -> None:
    guide = mailboxes.passwd_file(["a@example.org", "b@example.org"], {})
    assert guide.compare([CURRENT]) is None, "existing users keep their hash: applying twice changes nothing"
    added = PasswdFile((PasswdUser("c@example.org", Password("a long enough password")),)).compare([CURRENT])
    assert added is not None and added.summary == "update /etc/dovecot/users (1 new hash(es))"
    assert "+c@example.org:{SHA512-CRYPT}<new hash, made on the host>" in added.diff
    assert "$6$" not in added.diff and "a long enough password" not in added.diff + repr(added)
    script = added.script("mk0")
    assert "nologin=y reason=suspended" in script.stage, "a suspended user stays suspended"
    assert "doveadm pw -s SHA512-CRYPT" in script.stage and "check /etc/dovecot/users" in script.check


def test_adding_an_existing_address_is_refused_naming_passwd() -> None:
    again = PasswdFile((PasswdUser("a@example.org", Password("a long enough password"), new=True),))
    with pytest.raises(StateConflict, match=r"mailbox passwd a@example\.org"):
        again.compare([CURRENT])


def test_a_password_reset_keeps_the_other_fields() -> None:
    reset = PasswdFile((PasswdUser("b@example.org", Password("another long password"), reset=True),))
    change = reset.compare([CURRENT])
    assert (
        change is not None and "+b@example.org:{SHA512-CRYPT}<new hash, made on the host>::::::nologin=y" in change.diff
    )
    removed = PasswdFile((), remove=("a@example.org",)).compare([CURRENT])
    assert removed is not None and "-a@example.org:<redacted>" in removed.diff and "$6$" not in removed.diff


def test_mailbox_commands_edit_what_the_host_has() -> None:
    vmailbox, _, _ = mailboxes.remove_mailbox("a@example.org")
    current = FileState(
        b"# header\na@example.org example.org/a/\nb@example.org example.org/b/\n", 0o644, "root", "root"
    )
    change = vmailbox.compare([current, ("file", 0o644, "root", "root")])
    assert change is not None and change.diff.count("\n-a@example.org") == 1 and "+" not in change.diff.split("@@")[-1]


def test_consistency_names_what_disagrees() -> None:
    ok = _files({"a@example.org": "x"}, {"a@example.org": "h"}, {"a@example.org": "a@example.org"})
    assert all(r.ok for r in mailboxes.check_consistency(ok))
    broken = _files({"a@example.org": "x", "b@example.org": "y"}, {"a@example.org": "h", "z@example.org": "h"}, {})
    results = {r.name: r for r in mailboxes.check_consistency(broken)}
    assert results["every mailbox has a password (Dovecot passwd-file)"].detail == "b@example.org"
    assert not results["every mailbox has a sender login (smtpd_sender_login_maps)"].ok
    assert results["every password belongs to a mailbox"].detail == "z@example.org"


def test_part2_validates_its_parameters_before_anything_runs() -> None:
    with pytest.raises(ValueRejected, match="PASSWORDS"):
        Part2(Part1(), passwords={"alice@example.org": "short"})
    with pytest.raises(ValueRejected, match="path"):
        Part2(Part1(), cert_file="relative/cert.pem")
    part2 = Part2(Part1(), passwords={"alice@example.org": "a long enough password"})
    assert "a long enough password" not in repr(part2)


def test_dovecot_config_is_rendered_for_both_generations() -> None:
    both = Part2(Part1()).configs_side_by_side()
    assert isinstance(both, SideBySide)
    assert "mail_location = maildir:~" in both.left and "dovecot_config_version" not in both.left
    settings = [line for line in both.right.splitlines() if line.strip() and not line.startswith("#")]
    assert settings[0] == "dovecot_config_version = 2.4.0", "2.4 needs it as the first setting"
    assert "mail_inbox_path = ~" in both.right
    assert "ssl_server_cert_file = /etc/ssl/certs/mail.example.org.pem" in both.right
    assert "ssl_cert = </etc/ssl/certs/mail.example.org.pem" in both.left
    assert "%d" not in both.right.split("# --- who")[0].replace("%d is", ""), "2.4 would take %d literally"
    paired = {tuple(a): b for a, b in both.pairs()}
    location = next(b for a, b in paired.items() if "mail_location = maildir:~" in a)
    assert "mail_driver = maildir" in location and "mail_inbox_path = ~" in location, "old and new names side by side"
    assert [line for b in paired.values() for line in b if line.startswith("ssl_server_cert")] == [
        "ssl_server_cert_file = /etc/ssl/certs/mail.example.org.pem"
    ]
    shown = repr(both)
    assert "namespace inbox" not in shown and "lines the same" in shown, "what both share is counted, not printed"
    assert len(shown.splitlines()) < 60


def test_a_replaced_stock_file_is_a_diff_of_settings_not_of_its_comments() -> None:
    stock = "".join(f"# Debian's comment {i}\n" for i in range(30)) + "\n#mail_location =\nprotocols = imap\n"
    diff = unified_diff("/etc/dovecot/dovecot.conf", stock.encode(), b"protocols = imap lmtp\n")
    assert "-(32 comment or blank lines)" in diff
    assert "-protocols = imap\n" in diff and "+protocols = imap lmtp\n" in diff
    assert "Debian's comment" not in diff
    few = unified_diff("/etc/x", b"# one\n# two\nx = 1\n", b"x = 2\n")
    assert "-# one\n-# two\n" in few, "a short run of comments is still listed"
