"""The firewall of part 4, section 8, on a finished lab server: what it lets in, seen from the outside host on
IPv4 and IPv6; rules that would close SSH refused before anything changes; and rules that keep a new SSH login
out (the lab's switch plays it) undoing themselves. On every release the lab runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from mailkit.clients.reach import port_states
from mailkit.core import engine
from mailkit.core.errors import MailkitError
from mailkit.core.local import run_local
from mailkit.core.resources.nftables import Firewall
from mailkit.core.ssh import Connection
from mailkit.core.values import ValueRejected
from mailkit.guide.firewall import CLOSED_SAMPLE, served_ports
from mailkit.lab.lab import Lab
from mailkit.lab.lab_target import lab_connection
from mailkit.lab.layout import HOSTS, SWITCH_NETNS
from mailkit.server import rules

pytestmark = pytest.mark.lab
MAIL = HOSTS["mail"]
SERVED = served_ports([1, 2, 3, 4], acme=False)  # the lab's certificate comes from its CA: no port 80


@pytest.fixture
def mail(finished: Lab) -> Iterator[Connection]:
    conn = lab_connection("mail")
    yield conn
    conn.close()


def _state(mail: Connection) -> tuple[str, str]:
    """The rules file and the loaded table, as they are now."""
    conf = mail.run(["sha256sum", "/etc/nftables.conf"]).stdout
    return conf, mail.run(["nft", "list", "table", "inet", "filter"]).stdout


def test_the_firewall_lets_in_what_the_server_serves_and_nothing_else(mail: Connection) -> None:
    with lab_connection("outside") as outside:
        states = port_states(outside, MAIL.fqdn, [*SERVED, *CLOSED_SAMPLE])
    for family in (4, 6):
        assert rules.ports_open(family, SERVED, states).ok, states
        dropped = rules.ports_filtered(family, CLOSED_SAMPLE, states)
        assert dropped.ok, dropped.detail
    assert mail.run(["systemctl", "is-enabled", "nftables"]).stdout.strip() == "enabled", "kept across reboots"
    assert mail.run(["ss", "-Htln", "sport = :11334"]).stdout.strip(), "rspamd's web interface listens (locally)"

    # Without the rules the same closed ports are refused, not dropped: the probe tells them apart.
    mail.run(["nft", "delete", "table", "inet", "filter"])
    try:
        with lab_connection("outside") as outside:
            bare = port_states(outside, MAIL.fqdn, [3306])
        assert bare[(4, 3306)] == "refused" and not rules.ports_filtered(4, [3306], bare).ok
    finally:
        mail.run(["nft", "-f", "/etc/nftables.conf"])


def test_rules_that_would_close_ssh_are_refused_before_anything_changes(mail: Connection) -> None:
    before = _state(mail)
    with pytest.raises(ValueRejected, match="22, where sshd listens: it would lock you out"):
        engine.apply(mail, [Firewall(tuple(p for p in SERVED if p != 22))])
    assert _state(mail) == before
    assert engine.apply(mail, [Firewall(SERVED)]).changed is False, "the guide's rules, as they were"


def _refuse_new_logins(refuse: bool) -> None:
    """The lab's switch drops the mail host's answers to new SSH connections (SYN+ACK from port 22): as rules
    that kept new logins out would. Sessions already open go on."""
    table = "mailkit_test_no_new_ssh"
    rule = (
        f"table netdev {table}\ndelete table netdev {table}\n"
        f'table netdev {table} {{ chain c {{ type filter hook ingress device "{MAIL.switch_link}" priority 0; '
        "tcp sport 22 tcp flags & (syn | ack) == syn | ack drop; }; }\n"
    )
    lifted = f"table netdev {table}\ndelete table netdev {table}\n"
    run_local(["ip", "netns", "exec", SWITCH_NETNS, "nft", "-f", "-"], input=rule if refuse else lifted)


def test_rules_that_keep_a_new_login_out_undo_themselves(mail: Connection) -> None:
    before = _state(mail)
    wider = Firewall((*SERVED, 8080), confirm_seconds=6)
    mail.run(["true"])  # the session that applies them is open before the switch changes
    _refuse_new_logins(True)
    try:
        started = time.monotonic()
        with pytest.raises(MailkitError, match="undo themselves within 6 s"):
            engine.apply(mail, [wider])
        time.sleep(max(0.0, 8 - (time.monotonic() - started)))
    finally:
        _refuse_new_logins(False)
    deadline = time.monotonic() + 10  # the undo has run by now; give its last file a moment
    while _state(mail) != before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _state(mail) == before, "the old file and the old rules are back"
    assert not mail.run(["test", "-e", "/run/mailkit-firewall"], check=False).ok, "the undo cleans up after itself"
    assert "8080" not in mail.run(["nft", "list", "ruleset"]).stdout
    assert mail.run(["systemctl", "is-active", "mailkit-firewall-undo.timer"], check=False).stdout.strip() != "active"
