"""When the provider blocks port 25 (part 3, section 8): the lab blocks the mail host's outgoing port 25 as many
providers do; part 3 is run the reader's way with ``RELAYHOST``; the lab's independent receiver still judges the
mail ``spf=pass dkim=pass dmarc=pass``, now from the relay; a wrong relay password defers mail, never bounces it;
removing the relay and lifting the block brings direct delivery back. On every release the lab runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailkit.core import engine
from mailkit.core.ssh import Connection
from mailkit.core.values import Hostname, Password
from mailkit.guide import part3_checks, smarthost
from mailkit.guide.part1 import Part1
from mailkit.guide.part3 import Part3
from mailkit.guide.runner import run_guide
from mailkit.lab import network, receiver, relay_provider
from mailkit.lab.lab import Lab
from mailkit.lab.lab_target import lab_connection
from mailkit.lab.layout import HOSTS
from mailkit.lab.relay_provider import CUSTOMER, RELAY
from mailkit.server.mail_queue import read_queue
from mailkit.server.target import target_of
from mailkit.status.run import check_server

pytestmark = pytest.mark.lab

MAIL = HOSTS["mail"]
DANA = "dana@example.net"
RELAY_PARAMETERS = {"RELAYHOST": RELAY.host, "RELAY_USER": CUSTOMER, "RELAY_SPF_INCLUDE": RELAY.spf_include}


@pytest.fixture
def blocked(lab: Lab) -> Iterator[tuple[Connection, Connection]]:
    """Parts 1 and 2 on a fresh server whose provider blocks port 25, and a relay service to buy; afterwards the
    block lifted (each module starts from the host it asks for, so the relay settings left behind harm none)."""
    lab.reset(to_part=2)
    with lab_connection("outside") as outside:
        receiver.ensure(outside, lab)  # the other provider, whichever test ran before
        relay_provider.setup(outside, lab.ca, lab.passwords([RELAY.host])[RELAY.host])
    network.block_outbound(MAIL)
    mail, outside = lab_connection("mail"), lab_connection("outside")
    try:
        yield mail, outside
    finally:
        mail.close()
        outside.close()
        network.unblock_outbound(MAIL)


def _send(mail: Connection, subject: str) -> None:
    message = f"From: alice@example.org\nTo: {DANA}\nSubject: {subject}\n\nfrom the server\n"
    mail.run(["/usr/sbin/sendmail", "-f", "alice@example.org", DANA], input=message)


def _log(mail: Connection) -> str:
    """The mail log's last lines: what a failed assertion shows."""
    log = mail.run(["journalctl", "-q", "-o", "cat", "-u", "postfix*"], check=False).stdout.splitlines()
    ids = {line.split(":", 1)[0] for line in log if DANA in line or RELAY.host in line}
    mine = [line for line in log if line.split(":", 1)[0] in ids or RELAY.host in line]
    return "\n".join(mine)[-5000:] + "\n" + mail.run(["postqueue", "-p"], check=False).stdout


def _waiting(mail: Connection, seconds: float = 20) -> list[str]:
    deadline = time.monotonic() + seconds
    while not (reasons := read_queue(mail).delay_reasons) and time.monotonic() < deadline:
        time.sleep(0.5)
    return reasons


def test_a_blocked_server_sends_through_a_relay_and_receivers_still_trust_its_mail(
    blocked: tuple[Connection, Connection], tmp_path: Path
) -> None:
    mail, outside = blocked
    target = target_of("lab:mail")
    [port25] = part3_checks.outbound(mail, target)
    assert not port25.ok and "no greeting" in port25.detail, "the block is what the reader sees first"
    _send(mail, "waited for the relay")
    reasons = _waiting(mail)
    assert reasons and all(":25: Connection refused" in r for r in reasons), reasons

    started = time.monotonic()
    run = run_guide([3], tmp_path / "part3", target="lab:mail", parameters=RELAY_PARAMETERS)
    assert run.ok, run.error or [(c.name, c.detail) for c in run.checks if not c.ok]
    passed = {c.name for c in run.checks if c.ok and not c.skipped}
    judged = [c.name.split(": ", 1) for c in run.checks if c.group == "receiver" and ": " in c.name]
    verdicts = {(kind, what.split(" (")[0]) for kind, what in judged}
    wanted = {("mail from a user (587)", f"{v} at the receiver") for v in ("SPF", "DKIM", "DMARC")}
    wanted |= {("mail made on the server", f"{v} at the receiver") for v in ("SPF", "DKIM")}
    assert wanted <= verdicts, verdicts
    assert all(c.ok for c in run.checks if c.group == "receiver")
    assert "mail from a user (587): came through the relay" in passed
    assert "the sender verified the relay's certificate" in passed
    relay_rows = {c.name: c for c in run.checks if c.group == "relay"}
    assert len(relay_rows) == 3 and all(c.ok for c in relay_rows.values()), relay_rows
    print(f"part 3 through the relay: {time.monotonic() - started:.1f} s")

    mail.run(["postqueue", "-f"])  # what waited goes now, through the relay
    found = receiver.newest(outside, DANA, lambda m: m["Subject"] == "waited for the relay", seconds=30)
    assert found is not None, _log(mail)
    received = [str(h) for h in found[1].get_all("Received", [])]
    assert relay_provider.delivered_through(received), received

    checked = check_server("lab:mail", vantage="lab:outside").rows
    outbound = {r.name: r for r in checked if r.group == "outbound"}
    assert set(outbound) == {f"the relay {RELAY.destination} answers", "the relay accepts the server's login"}
    assert all(r.ok for r in outbound.values()), outbound
    assert [r.key for r in checked if r.group == "drift" and not r.ok] == [], "the relay's settings are no drift"

    # The block lifted: the relay goes (the engine's removal), direct delivery comes back.
    network.unblock_outbound(MAIL)
    engine.apply(mail, smarthost.removal())
    assert mail.run(["postconf", "-h", "relayhost"]).stdout.strip() == ""
    assert not mail.run(["test", "-e", smarthost.SASL_PASSWORDS], check=False).ok
    _send(mail, "direct again")
    found = receiver.newest(outside, DANA, lambda m: m["Subject"] == "direct again", seconds=30)
    assert found is not None, _log(mail)
    received = [str(h) for h in found[1].get_all("Received", [])]
    assert not relay_provider.delivered_through(received) and MAIL.fqdn in received[0], received


def test_a_wrong_relay_password_defers_mail_and_says_why_and_any_password_is_taken_verbatim(
    blocked: tuple[Connection, Connection], lab: Lab
) -> None:
    mail, outside = blocked
    target = target_of("lab:mail")
    part1 = Part1("example.org", ["b.example.org"], mailboxes=("alice@example.org", "bob@example.org"))
    odd = Password("p@ss word;$(id)`\"'#:\\x{}")  # a shell's and a table's metacharacters, kept verbatim
    relay_provider.setup(outside, lab.ca, odd)
    wrong = Part3(part1, smarthost=smarthost.Smarthost(Hostname(RELAY.host), CUSTOMER, Password("not the password")))
    engine.apply(mail, [*wrong.outbound_tls(), *wrong.relay()])  # section 7 first: the CAs the relay is checked with
    checks = {c.name: c for c in part3_checks.relay_checks(mail, target, wrong)}
    login = checks[f"the relay takes the server's login (sendmail -bv postmaster@{target.relay_domain})"]
    assert not login.ok and "535" in login.detail, login
    assert checks["the relay login table is root's alone (0600)"].ok

    _send(mail, "waits for the right password")
    reasons = _waiting(mail)
    assert reasons and all("SASL authentication failed" in r for r in reasons), reasons
    time.sleep(2)
    assert read_queue(mail).delay_reasons, "deferred, never bounced"
    rows = {r.name: r for r in check_server("lab:mail", vantage="lab:outside").rows if r.group == "outbound"}
    refused = rows["the relay accepts the server's login"]
    assert not refused.ok and "535" in refused.detail, refused

    right = Part3(part1, smarthost=smarthost.Smarthost(Hostname(RELAY.host), CUSTOMER, odd))
    engine.apply(mail, right.relay())
    assert mail.run(["postmap", "-q", RELAY.destination, f"lmdb:{smarthost.SASL_PASSWORDS}"]).stdout.strip() == (
        f"{CUSTOMER}:{odd.reveal()}"
    )
    checks = {c.name: c for c in part3_checks.relay_checks(mail, target, right)}
    assert all(c.ok for c in checks.values()), checks
    mail.run(["postqueue", "-f"])
    found = receiver.newest(outside, DANA, lambda m: m["Subject"] == "waits for the right password", seconds=30)
    assert found is not None, _log(mail)
