"""The firewall (part 4, section 8): its rules, the refusal of rules that would lock SSH out, its ports from the
guide's registry, and the probe's reading of what another host sees."""

from __future__ import annotations

import pytest

from mailkit.clients.reach import parse_states
from mailkit.core.errors import MailkitError
from mailkit.core.facts import FileState
from mailkit.core.resources.nftables import Firewall, SshdPorts, ruleset
from mailkit.core.values import ValueRejected
from mailkit.guide.chapters import PORTS
from mailkit.guide.firewall import CLOSED_SAMPLE, served_ports
from mailkit.server import rules


def _current(content: str | None, sshd: set[int], enabled: bool = True, loaded: bool = True) -> list[object]:
    return [FileState(None if content is None else content.encode(), 0o755, "root", "root"), frozenset(sshd),
            enabled, loaded]  # fmt: skip


def test_the_rules_open_each_port_once_on_both_families_and_drop_the_rest() -> None:
    text = ruleset((993, 25, 22, 25))
    assert "tcp dport { 22, 25, 993 } accept" in text
    assert "table inet filter {" in text and "policy drop;" in text, "inet: IPv4 and IPv6 in one table"
    lines = [line.strip() for line in text.splitlines()]
    assert lines.index("ct state established,related accept") < lines.index("tcp dport { 22, 25, 993 } accept")
    assert "flush ruleset" not in text, "other tables (fail2ban's) are left alone"
    with pytest.raises(ValueRejected, match="not a TCP port"):
        ruleset((25, 70000))
    with pytest.raises(ValueRejected, match="opens nothing"):
        Firewall(())


def test_rules_that_would_close_the_port_sshd_listens_on_are_refused_before_anything_happens() -> None:
    wall = Firewall((22, 25, 587))
    with pytest.raises(ValueRejected, match="2222, where sshd listens: it would lock you out"):
        wall.compare(_current(None, {2222}))
    with pytest.raises(ValueRejected, match="2222"):
        wall.compare(_current(None, {22, 2222}))
    with pytest.raises(MailkitError, match="sshd -T"):
        wall.compare([FileState(None), None, False, False])
    assert SshdPorts().parse("22\n2222\n", 0) == frozenset({22, 2222})
    assert SshdPorts().parse("", 1) is None


def test_the_same_rules_loaded_and_enabled_are_no_change_and_anything_else_is_shown() -> None:
    wall = Firewall((22, 25))
    assert wall.compare(_current(wall.content, {22})) is None
    first = wall.compare(_current(None, {22}, enabled=False, loaded=False))
    assert first is not None and first.run is not None and "+        tcp dport { 22, 25 } accept" in first.diff
    assert "enable nftables" in first.summary and "confirmed by a new SSH login" in first.summary
    unloaded = wall.compare(_current(wall.content, {22}, loaded=False))
    assert unloaded is not None and unloaded.diff == "" and "load the rules" in unloaded.summary


def test_the_ports_come_from_the_guides_registry() -> None:
    every = served_ports([1, 2, 3, 4], acme=False)
    assert set(every) == {22, *PORTS}, "SSH and every port a part serves"
    assert 80 not in every and 80 in served_ports([1, 2], acme=True), "80 only for certbot's challenge"
    assert served_ports([1], acme=False) == (22, 25)
    assert not set(CLOSED_SAMPLE) & set(PORTS), "the closed sample names no served port"
    with pytest.raises(ValueRejected, match="SSH_PORT"):
        served_ports([1], acme=False, ssh_port=0)


def test_what_the_probe_prints_is_read_strictly_and_judged_per_family() -> None:
    noise = "4 25 open\n" + "x" * 10_000 + "\n6 25 open\n6 587 refused\n4 22 wide-open\n"
    states = parse_states(noise)
    assert states == {(4, 25): "open", (6, 25): "open", (6, 587): "refused"}
    assert rules.ports_open(4, [25], states).ok
    wrong = rules.ports_open(6, [25, 587], states)
    assert not wrong.ok and wrong.detail == "IPv6: 587 refused"
    assert not rules.ports_open(4, [22], states).ok, "a state the probe cannot print is not open"
    missing = rules.ports_filtered(4, [3306], states)
    assert not missing.ok and "3306 not probed" in missing.detail


def test_mailkit_check_reads_the_firewall_from_what_the_probe_saw_per_address() -> None:
    from mailkit.status.outside import FIREWALL_SAMPLE, firewall_rows

    assert 80 not in FIREWALL_SAMPLE, "servers whose certificate comes by HTTP-01 serve port 80"
    dropped = {str(p): "filtered" for p in FIREWALL_SAMPLE}
    rows = firewall_rows({"198.51.100.25": dropped, "2001:db8:100::25": {**dropped, "3306": "closed"}})
    assert [(r.name, r.ok) for r in rows] == [
        ("other ports get no answer on 198.51.100.25", True),
        ("other ports get no answer on 2001:db8:100::25", False),
    ]
    assert "3306 closed (not filtered)" in rows[1].detail and "section 8" in rows[1].fix
    assert firewall_rows({"198.51.100.25": {"x": "open"}})[0].ok is False, "nothing probed is no proof"
