"""Validated values: at least 30 bad inputs, each refused with a message that names the field."""

from __future__ import annotations

import pytest

from mailkit.core.values import (
    Domain,
    EmailAddress,
    Hostname,
    LocalPart,
    Password,
    RemotePath,
    ValueRejected,
    list_item,
    setting_name,
    setting_value,
)

BAD = [
    (Domain, "", "empty"),
    (Domain, "example", "two labels"),
    (Domain, "example.org.", "trailing dot"),
    (Domain, "exa mple.org", "letters, digits"),
    (Domain, "example..org", "empty label"),
    (Domain, "-example.org", "start or end"),
    (Domain, "example-.org", "start or end"),
    (Domain, "a" * 64 + ".org", "at most 63"),
    (Domain, ("a" * 60 + ".") * 5 + "org", "at most 253"),
    (Domain, "example.org\nmydestination = evil", "letters, digits"),
    (Domain, "example.org,evil.test", "letters, digits"),
    (Domain, "exa_mple.org", "letters, digits"),
    (Domain, "198.51.100.25", "numeric"),
    (Domain, "ex\0ample.org", "letters, digits"),
    (Domain, 'example.org"', "letters, digits"),
    (Domain, 42, "must be text"),
    (Hostname, "mail", "two labels"),
    (Domain, "\udcff.org", "IDNA"),
    (LocalPart, "", "empty"),
    (LocalPart, "a" * 65, "at most 64"),
    (LocalPart, "user+tag", "recipient delimiter"),
    (LocalPart, "us er", "only letters"),
    (LocalPart, "user:x", "only letters"),
    (LocalPart, ".user", "only letters"),
    (LocalPart, "user.", "only letters"),
    (LocalPart, "us..er", "only letters"),
    (LocalPart, "../../etc", "only letters"),
    (LocalPart, "user\n", "only letters"),
    (LocalPart, '"quoted"', "only letters"),
    (LocalPart, "user%other", "only letters"),
    (EmailAddress, "no-at-sign.example.org", "exactly one '@'"),
    (EmailAddress, "a@b@example.org", "exactly one '@'"),
    (EmailAddress, "@example.org", "empty"),
    (EmailAddress, "user@", "empty"),
    (EmailAddress, "user@localhost", "two labels"),
    (RemotePath, "relative/path", "absolute"),
    (RemotePath, "/var/vmail/../etc/shadow", "normalised"),
    (RemotePath, "/var//vmail", "normalised"),
    (RemotePath, "/var/v mail", "only letters"),
    (RemotePath, "/var/vmail;rm -rf /", "only letters"),
    (RemotePath, "/var/vmail\n", "only letters"),
    (RemotePath, "/var/$(id)", "only letters"),
    (Password, "short", "at least 12"),
    (Password, "twelve chars\nsecond line", "newline"),
    (Password, "nul byte in here \0", "NUL"),
    (Password, None, "must be text"),
]


@pytest.mark.parametrize(("kind", "value", "reason"), BAD, ids=[f"{k.__name__}-{i}" for i, (k, _, _) in enumerate(BAD)])
def test_bad_value_is_refused_with_the_field_named(kind, value, reason) -> None:
    with pytest.raises(ValueRejected) as caught:
        kind(value, field="the_field")
    message = str(caught.value)
    assert message.startswith("the_field"), message
    assert reason in message, message


def test_at_least_thirty_bad_inputs() -> None:
    assert len(BAD) >= 30


@pytest.mark.parametrize(
    ("func", "value", "reason"),
    [
        (setting_name, "my hostname", "parameter name"),
        (setting_name, "MyHostname", "parameter name"),
        (setting_name, "a=b", "parameter name"),
        (setting_value, "one\ntwo", "newline"),
        (setting_value, "one\rtwo", "carriage return"),
        (setting_value, " padded", "leading or trailing"),
        (setting_value, "x\0", "NUL"),
        (list_item, "a,b", "','"),
        (list_item, "a b", "' '"),
        (list_item, "'quoted'", '"\'"'),
        (list_item, "", "empty"),
    ],
)
def test_bad_setting_is_refused(func, value, reason) -> None:
    with pytest.raises(ValueRejected, match=r"^the_field") as caught:
        func(value, field="the_field")
    assert reason in str(caught.value)


def test_good_values_are_normalised() -> None:
    assert Domain("Mail.Example.ORG") == "mail.example.org"
    with pytest.raises(ValueRejected, match=r"IDNA 2008 form \(xn--bcher-kva\.example\)"):
        Domain("bücher.example")
    address = EmailAddress("Alice.Smith@B.Example.org")
    assert (address, address.local, address.domain) == ("alice.smith@b.example.org", "alice.smith", "b.example.org")
    assert RemotePath("/var/vmail/example.org/alice/") == "/var/vmail/example.org/alice/"
    assert setting_value(True) == "yes" and setting_value(0) == "0"
    assert setting_value("$myhostname, localhost.$mydomain, localhost") == "$myhostname, localhost.$mydomain, localhost"


def test_password_never_shows_itself() -> None:
    secret = "correct horse battery staple"
    password = Password(secret)
    for shown in (repr(password), str(password), f"{password}", str([password])):
        assert secret not in shown
    assert password.reveal() == secret
    with pytest.raises(ValueRejected) as caught:
        Password("short\nsecret")
    assert "short" not in str(caught.value)
