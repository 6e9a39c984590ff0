"""One rule per check (issue 21, item 2): the guide's checks and ``mailkit check`` decide by the same functions.

Before, they disagreed: a backup MX failed part 3's check and passed part 1's; a 454 to a relay attempt passed
``mailkit check`` only if it was 5xx but part 1 wanted exactly 554; the certificate rule differed by one day.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mailkit.core.text import REPLY_CHARS
from mailkit.server import rules
from mailkit.status.dnschecks import mx_rows
from mailkit.status.outside import auth_rows, relay_rows, role_rows, tls_rows

PACKAGE = Path(rules.__file__).resolve().parents[1]
#: Each rule, and the part of the guide whose checks use it besides mailkit check.
SHARED = {
    "exchanger": ("guide/part1.py", "guide/part3_checks.py", "status/dnschecks.py"),
    "certificate": ("guide/part2_checks.py", "status/outside.py"),
    "relay_refused": ("guide/part1.py", "guide/part2_checks.py", "status/outside.py"),
    "no_auth_before_tls": ("guide/part2_checks.py", "status/outside.py"),
    "cleartext_login_refused": ("guide/part2_checks.py", "status/outside.py"),
    "REQUIRED_ROLES": ("guide/part1.py", "status/run.py"),
}


def _uses(path: Path) -> set[str]:
    """The names a module takes from ``rules`` (``rules.x``)."""
    tree = ast.parse(path.read_text())
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "rules"
    }


@pytest.mark.parametrize("rule", sorted(SHARED))
def test_the_guide_and_mailkit_check_decide_by_the_same_rule(rule: str) -> None:
    users = [where for where in SHARED[rule] if rule in _uses(PACKAGE / where)]
    assert users == list(SHARED[rule])
    assert any(w.startswith("guide/") for w in users) and any(w.startswith("status/") for w in users)


def test_the_most_preferred_exchanger_must_be_the_server_and_a_backup_may_stand_by() -> None:
    backup = ["20 backup.example.net.", "10 mail.example.org."]
    assert rules.exchanger(backup, "mail.example.org").ok
    assert not rules.exchanger(["10 backup.example.net.", "20 mail.example.org."], "mail.example.org").ok
    assert not rules.exchanger(["0 ."], "mail.example.org").ok, "a null MX takes no mail"
    assert [r.ok for r in mx_rows(["example.org"], "mail.example.org", lambda name, rtype: tuple(backup))] == [True]


def test_a_relay_attempt_must_be_refused_for_good() -> None:
    assert rules.relay_refused(554, "5.7.1 <victim@other.test>: Relay access denied").ok
    assert rules.relay_refused(550, "5.7.1 relaying denied").ok, "any permanent refusal, whatever the software"
    assert not rules.relay_refused(454, "4.7.1 <victim@other.test>: Relay access denied").ok
    accepted = rules.relay_refused(250, "2.1.5 Ok")
    assert not accepted.ok and "relays for strangers" in accepted.detail
    assert not rules.relay_refused(0, "connection refused").ok
    seen = {"relay": [["percent hack", "victim%other.test@example.org", 454, "4.7.1 Relay access denied"]]}
    rows = relay_rows(seen, "example.org")
    assert [r.ok for r in rows if "percent hack" in r.name] == [False]


def test_a_certificate_is_for_the_server_and_fresh_by_one_rule() -> None:
    assert rules.certificate("TLSv1.3", "mail.example.org", "mail.example.org", 14.5).ok
    assert not rules.certificate("TLSv1.3", "mail.example.org", "mail.example.org", 14.0).ok, "more than 14 days"
    assert not rules.certificate("TLSv1.3", "other.example.org", "mail.example.org", 80).ok
    probe = {"587": {"tls": {"version": "TLSv1.3", "days_left": 14.0}}}
    assert [r.ok for r in tls_rows(probe, [587], "mail.example.org", "198.51.100.25")] == [False]


def test_no_password_before_tls_on_submission_and_imap() -> None:
    assert rules.no_auth_before_tls(False, True).ok
    assert not rules.no_auth_before_tls(True, True).ok
    assert not rules.no_auth_before_tls(False, False).ok, "no STARTTLS at all is no better"
    assert not rules.no_auth_before_tls(None).ok
    seen = {"587": {"auth_before_tls": True, "starttls_offered": True, "auth_after_tls": ["PLAIN"]}}
    early = [r for r in auth_rows(seen) if r.name == "587: no AUTH before STARTTLS"]
    assert [(r.ok, r.detail) for r in early] == [(False, "AUTH offered in clear text")]
    assert rules.cleartext_login_refused(["IMAP4rev1", "LOGINDISABLED"], ["NO", "[PRIVACYREQUIRED] disallowed"]).ok
    wrong_password = ["NO", "[AUTHENTICATIONFAILED] Authentication failed."]
    assert not rules.cleartext_login_refused(["LOGINDISABLED"], wrong_password).ok, "refused for the wrong reason"
    assert not rules.cleartext_login_refused(["IMAP4rev1"]).ok


def test_role_addresses_and_long_replies_are_shown_with_a_mark_where_cut() -> None:
    rows = role_rows({"roles": [["abuse@example.org", 550, "5.1.1 <abuse@example.org>: User unknown " * 5]]})
    assert [r.ok for r in rows] == [False]
    assert rows[0].detail.endswith("...") and len(rows[0].detail) == REPLY_CHARS
