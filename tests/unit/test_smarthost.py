"""Part 3, section 8: sending through a relay when the provider blocks port 25 (issue 25, item 1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from mailkit.core.resources import LookupTable, Postconf
from mailkit.core.values import Hostname, Password, ValueRejected
from mailkit.guide import smarthost
from mailkit.guide.part1 import Part1
from mailkit.guide.part3 import Part3
from mailkit.guide.smarthost import SETTINGS, Smarthost, from_parameters, removal
from mailkit.lab.layout import HOSTS
from mailkit.lab.network import outbound_block
from mailkit.lab.relay_provider import RELAY, relay_script

ODD = "p@ss word;$(id)`\"'#:\\x{}"


def test_the_login_table_holds_the_password_verbatim_and_nothing_shows_it() -> None:
    relay = Smarthost(Hostname("relay.example.net"), "example-org", Password(ODD), spf_include="relay.example.net")
    table, settings = relay.resources()
    assert isinstance(table, LookupTable) and isinstance(settings, Postconf)
    assert table.content == f"[relay.example.net]:587 example-org:{ODD}\n", "postmap's key, then user:password"
    assert table.mode == 0o600 and table.owner == "root" and table.secret
    for shown in (repr(relay), repr(table), str(relay.resources())):
        assert ODD not in shown
    assert set(settings.settings) == set(SETTINGS)
    assert settings.settings["smtp_tls_policy_maps"] == "inline:{ [relay.example.net]:587=secure }"


@pytest.mark.parametrize(
    ("user", "password", "why"),
    [
        ("example:org", "a long enough password", "RELAY_USER"),
        ("example org", "a long enough password", "RELAY_USER"),
        ("", "a long enough password", "RELAY_USER"),
        ("example-org", " a password with a space", "RELAY_PASSWORD"),
        ("example-org", "a password with a space ", "RELAY_PASSWORD"),
    ],
)
def test_what_postfix_table_would_change_is_refused_before_anything_runs(user: str, password: str, why: str) -> None:
    with pytest.raises(ValueRejected, match=why):
        Smarthost(Hostname("relay.example.net"), user, Password(password))


def test_a_password_with_a_newline_or_a_host_that_is_no_name_is_refused() -> None:
    with pytest.raises(ValueRejected):
        Password("first line\nsecond line")
    with pytest.raises(ValueRejected, match="RELAYHOST"):
        Smarthost(Hostname("relay.example.net; rm -rf /", field="RELAYHOST"), "u", Password("a long password"))
    with pytest.raises(ValueRejected, match="RELAY_PORT"):
        Smarthost(Hostname("relay.example.net"), "u", Password("a long password"), port=0)


def test_removal_brings_direct_delivery_back_and_deletes_the_table() -> None:
    table, settings = removal()
    assert isinstance(table, LookupTable) and not table.present
    assert isinstance(settings, Postconf)
    assert settings.settings == {**{name: None for name in SETTINGS}, "relayhost": ""}


def test_spf_names_the_relay_only_when_mail_leaves_through_it() -> None:
    relay = Smarthost(Hostname("relay.example.net"), "u", Password("a long password"), spf_include="relay.example.net")
    part1 = Part1()
    direct, relayed = Part3(part1), Part3(part1, smarthost=relay)
    assert direct.spf_value() == "v=spf1 mx -all" and direct.relay() == []
    assert relayed.spf_value() == "v=spf1 mx include:relay.example.net -all"
    spf = [r for r in relayed.records({}) if r.name == "example.org" and r.rtype == "TXT"]
    assert [r.values for r in spf] == [('"v=spf1 mx include:relay.example.net -all"',)]
    assert [type(r) for r in relayed.relay()] == [LookupTable, Postconf]


class _Target:
    def __init__(self) -> None:
        self.asked: list[Sequence[str]] = []

    def passwords(self, names: Sequence[str], given: Mapping[str, str] | None = None) -> dict[str, Password]:
        self.asked.append(names)
        return {n: Password("the relay's password") for n in names}


def test_the_notebooks_parameters_make_a_relay_only_when_relayhost_is_set() -> None:
    target = _Target()
    assert from_parameters(target, None, None) is None  # type: ignore[arg-type]
    with pytest.raises(ValueRejected, match="RELAY_USER"):
        from_parameters(target, "relay.example.net", None)  # type: ignore[arg-type]
    relay = from_parameters(target, "relay.example.net", "example-org", 2525, "spf.relay.example.net")  # type: ignore[arg-type]
    assert relay is not None and relay.destination == "[relay.example.net]:2525"
    assert relay.spf_include == "spf.relay.example.net" and target.asked == [["relay.example.net"]]
    assert smarthost.destination_parts(relay.destination) == ("relay.example.net", 2525)


def test_the_lab_blocks_port_25_where_the_host_cannot_lift_it_and_the_relay_logs_in_only_after_tls() -> None:
    rules = outbound_block(HOSTS["mail"])
    assert "table netdev block25_mk_mail" in rules and 'hook ingress device "mk-mail"' in rules, "on the switch port"
    assert "tcp dport 25 reject with tcp reset" in rules and "dport 587" not in rules
    script = relay_script(RELAY, "example-org")
    assert "submission/inet/smtpd_tls_security_level=encrypt" in script
    assert "smtpd_relay_restrictions=permit_sasl_authenticated,reject" in script
    assert "saslpasswd2 -p" in script, "the customer's password comes on standard input, never on a command line"


def test_a_params_file_names_a_relay_with_its_login_and_nothing_else() -> None:
    from mailkit.guide.params import validate

    wanted = {"RELAYHOST": "relay.example.net", "RELAY_USER": "example-org", "RELAY_SPF_INCLUDE": "relay.example.net"}
    assert validate({**wanted, "RELAY_PORT": 2525})["RELAY_PORT"] == 2525
    with pytest.raises(ValueRejected, match="RELAY_USER"):
        validate({"RELAYHOST": "relay.example.net"})
    with pytest.raises(ValueRejected, match="RELAY_PORT"):
        validate({**wanted, "RELAY_PORT": "587"})
    with pytest.raises(ValueRejected, match="RELAYHOST"):
        validate({**wanted, "RELAYHOST": "relay.example.net:587"})
