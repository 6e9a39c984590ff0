"""Mailbox files: parsing, the sender-login map, consistency, and part 2's parameters."""

from __future__ import annotations

import pytest

from mailkit import mailboxes
from mailkit.display import SideBySide
from mailkit.guide.part1 import Part1
from mailkit.guide.part2 import Part2
from mailkit.values import ValueRejected


def _files(boxes: dict[str, str], hashes: dict[str, str], senders: dict[str, str]) -> mailboxes.MailboxFiles:
    return mailboxes.MailboxFiles(boxes, hashes, senders, {}, "", "")


def test_tables_and_passwd_files_are_parsed() -> None:
    assert mailboxes.parse_table("# c\n\nalice@example.org   example.org/alice/\n") == {
        "alice@example.org": "example.org/alice/"
    }
    assert mailboxes.parse_passwd("# c\nalice@example.org:{SHA512-CRYPT}$6$x$y::::\n") == {
        "alice@example.org": "{SHA512-CRYPT}$6$x$y"
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


def test_passwd_content_is_sorted_and_has_no_secret_in_its_header() -> None:
    text = mailboxes.passwd_content({"b@example.org": "{SHA512-CRYPT}$6$b", "a@example.org": "{SHA512-CRYPT}$6$a"})
    lines = text.splitlines()
    assert lines[1:] == ["a@example.org:{SHA512-CRYPT}$6$a", "b@example.org:{SHA512-CRYPT}$6$b"]


def test_consistency_names_what_disagrees() -> None:
    ok = _files({"a@example.org": "x"}, {"a@example.org": "h"}, {"a@example.org": "a@example.org"})
    assert all(r.ok for r in mailboxes.check_consistency(ok))
    broken = _files({"a@example.org": "x", "b@example.org": "y"}, {"a@example.org": "h", "z@example.org": "h"}, {})
    results = {r.name: r for r in mailboxes.check_consistency(broken)}
    assert results["every mailbox has a password (Dovecot passwd-file)"].detail == "b@example.org"
    assert not results["every mailbox has a sender login (smtpd_sender_login_maps)"].ok
    assert results["every password belongs to a mailbox"].detail == "z@example.org"


def test_a_line_is_replaced_or_removed_keeping_comments() -> None:
    text = "# header\nalice@example.org example.org/alice/\nbob@example.org example.org/bob/\n"
    assert mailboxes._with_line(text, "bob@example.org", None) == "# header\nalice@example.org example.org/alice/\n"
    added = mailboxes._with_line(text, "carol@example.org", "carol@example.org example.org/carol/")
    assert added.endswith("carol@example.org example.org/carol/\n") and added.startswith("# header\n")


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
    assert "only in Dovecot 2.3 (bookworm): mail_location" in both.differences()
    assert "only in Dovecot 2.4 (trixie): mail_driver" in both.differences()
