"""The lab's independent receiver (another provider for example.net, on the outside host), from the sender's side.

Runs after the notebooks (test_30), so the mail host sends with parts 1 to 3 applied (its mail is signed).
SPF and DMARC records are published for the test and taken away after it.
"""

from __future__ import annotations

import email
import secrets
import time
from collections.abc import Iterator

import pytest

from mailkit.core import engine
from mailkit.core.ssh import Connection
from mailkit.domain import records as dnsrecords
from mailkit.domain.records import RecordSet, txt
from mailkit.domain.tlsa import tlsa_name
from mailkit.lab import receiver
from mailkit.lab.dns import NAMESERVER, reverse_name, set_records
from mailkit.lab.lab import Lab
from mailkit.lab.lab_target import lab_connection
from mailkit.lab.layout import HOSTS
from mailkit.server.target import target_of

pytestmark = pytest.mark.lab

DANA = "dana@example.net"
SPF = RecordSet("example.org", "TXT", (txt("v=spf1 mx -all"),))
DMARC = RecordSet("_dmarc.example.org", "TXT", (txt("v=DMARC1; p=reject"),))


@pytest.fixture(scope="module")
def outside(finished: Lab) -> Iterator[Connection]:
    lab = finished
    conn = lab_connection("outside")
    receiver.ensure(conn, lab)  # notebook 03 has configured it already
    assert not receiver.ensure(conn, lab).changed, "configuring the receiver again changes nothing"
    lookup = dnsrecords.lookup_at(NAMESERVER.address)
    before = {record.name: list(lookup(record.name, "TXT")) for record in (SPF, DMARC)}  # what the guide published
    target_of("lab:mail").publish([SPF, DMARC], lookup)
    assert not dnsrecords.plan([SPF, DMARC], lookup, NAMESERVER.fqdn), "published records are answered"
    yield conn
    secret = lab.tsig_secret()
    for name, values in before.items():  # put back what was there, so later tests see the guide's server
        set_records(name, "TXT", values, secret)
    conn.close()


def _wait_for(outside: Connection, token: str, seconds: float = 30) -> email.message.Message | None:
    found = receiver.newest(outside, DANA, lambda m: m["Subject"] == token, seconds=seconds)
    return found[1] if found else None


def _send_from_mail(token: str) -> None:
    with lab_connection("mail") as mail:
        body = f"From: alice@example.org\nTo: {DANA}\nSubject: {token}\n\nfrom the mail host\n"
        mail.run(["/usr/sbin/sendmail", "-f", "alice@example.org", DANA], input=body)


def test_mail_from_the_server_arrives_over_tls_signed_with_spf_dkim_and_dmarc_pass(outside: Connection) -> None:
    token = f"receiver {secrets.token_hex(4)}"
    _send_from_mail(token)
    message = _wait_for(outside, token)
    assert message is not None, "the message never reached dana's Maildir on the receiver"
    results = " ".join(message.get_all("Authentication-Results", []))
    assert "outside.example.net" in results
    assert "spf=pass" in results and "smtp.mailfrom=example.org" in results.replace("alice@", "")
    assert "dkim=pass" in results and "header.d=example.org" in results, results
    assert "dmarc=pass" in results, results
    received = message.get_all("Received", [])[0]
    assert "outside.example.net" in received and "TLS" in received, received


def test_a_forged_sender_fails_spf_and_is_refused_under_p_reject(outside: Connection) -> None:
    token = f"forged {secrets.token_hex(4)}"
    sent = outside.run(
        [
            "swaks", "--server", HOSTS["outside"].fqdn, "--to", DANA, "--from", "alice@example.org",
            "--helo", HOSTS["outside"].fqdn, "--header", f"Subject: {token}",
        ],
        check=False,
    )  # fmt: skip
    assert "550 5.7.1" in sent.stdout and "DMARC" in sent.stdout.upper(), sent.stdout[-600:]
    assert _wait_for(outside, token, seconds=2) is None


def test_without_reverse_dns_the_receiver_refuses_the_server(lab: Lab, outside: Connection) -> None:
    mail_spec = HOSTS["mail"]
    pointers = [reverse_name(mail_spec.address), reverse_name(mail_spec.address6)]  # both: IPv6 is tried first
    secret = lab.tsig_secret()
    for ptr in pointers:
        set_records(ptr, "PTR", [], secret)
    token = f"no ptr {secrets.token_hex(4)}"
    try:
        _send_from_mail(token)
        with lab_connection("mail") as mail:
            deadline, queue = time.monotonic() + 30, ""
            while time.monotonic() < deadline and "cannot find your hostname" not in queue:
                time.sleep(0.5)
                queue = mail.run(["postqueue", "-p"]).stdout
        assert "cannot find your hostname" in queue, queue
        assert _wait_for(outside, token, seconds=1) is None
    finally:
        for ptr in pointers:
            set_records(ptr, "PTR", [mail_spec.fqdn + "."], secret)
    with lab_connection("mail") as mail:
        mail.run(["postqueue", "-f"])
    assert _wait_for(outside, token) is not None, "with the PTR back, the deferred message is delivered"


def test_a_tlsa_record_naming_another_key_holds_the_mail_in_the_queue_never_sent_in_clear(
    lab: Lab, outside: Connection
) -> None:
    """DANE's point (03 section 13): the receiver's TLSA record names another key, as after an attack or a botched
    key change. The server does not send in plain text nor to the key it finds: the message waits in its queue, the
    reason said; with the right record back, the queue delivers it, once."""
    name = tlsa_name(receiver.RECEIVER.host)
    right = list(dnsrecords.lookup_at(NAMESERVER.address)(name, "TLSA"))
    assert len(right) == 1 and right[0].startswith("3 1 1 "), right
    token = f"wrong tlsa {secrets.token_hex(4)}"
    secret = lab.tsig_secret()
    set_records(name, "TLSA", ["3 1 1 " + "ab" * 32], secret)
    try:
        time.sleep(11)  # the server's resolver keeps an answer 10 s in the lab (its TTL on the internet)
        _send_from_mail(token)
        with lab_connection("mail") as mail:
            deadline, queue = time.monotonic() + 30, ""
            while time.monotonic() < deadline and "certificate not verified" not in queue.lower():
                time.sleep(0.5)
                queue = mail.run(["postqueue", "-p"]).stdout
        assert "Server certificate not verified" in queue, queue
        assert _wait_for(outside, token, seconds=1) is None, "nothing reached the receiver, in clear or not"
    finally:
        set_records(name, "TLSA", right, secret)
    time.sleep(11)
    with lab_connection("mail") as mail:
        mail.run(["postqueue", "-f"])
    assert _wait_for(outside, token) is not None, "with the right record back, the deferred message is delivered"
    time.sleep(2)
    copies = [m for m in receiver.messages(outside, DANA) if token.encode() in m]
    assert len(copies) == 1, "delivered once"
    received = email.message_from_bytes(copies[0]).get_all("Received", [])[0]
    assert "TLS" in received, received


def test_the_receiver_keeps_its_private_key_to_root(outside: Connection) -> None:
    key = f"/etc/ssl/private/{receiver.RECEIVER.host}.key"
    assert outside.run(["stat", "-c", "%U %a", key]).stdout.split() == ["root", "600"]
    chain, private = Lab().ca.certificate(receiver.RECEIVER.host)
    assert not engine.plan(outside, receiver.RECEIVER.resources(chain, private))
