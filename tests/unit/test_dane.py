"""DANE's own logic (03 section 13): the digest of a served key read from a certificate, the verdict on TLSA records,
the rows `mailkit check` makes of them, and the server's resolver as each DNS world needs it."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path

import pytest

from mailkit.core.resources import File, Packages
from mailkit.core.values import ValueRejected
from mailkit.domain import dnssec
from mailkit.domain.dnssec import Chain
from mailkit.domain.tlsa import judge, read_tlsa, records_for, tlsa_311
from mailkit.guide.dane import DEBIAN_ANCHOR_FILE, RESOLV_CONF, UNBOUND_CONF, Dane
from mailkit.guide.dane_checks import finger_verdict
from mailkit.guide.part1 import Part1
from mailkit.guide.part2 import Part2
from mailkit.remote.probe import spki_of
from mailkit.server.target import target_of
from mailkit.status import dane_rows

ANCHOR = ". IN DS 4242 13 2 " + "AB" * 32


def _certificate(tmp_path: Path, algorithm: list[str]) -> tuple[bytes, bytes]:
    """A self-signed certificate (DER) and its public key (DER), made by openssl."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-newkey", *algorithm, "-keyout", key, "-out", cert,
                    "-subj", "/CN=mail.example.org", "-days", "2"], check=True, capture_output=True)  # fmt: skip
    der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"], check=True, capture_output=True).stdout
    public = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"], check=True,
                            capture_output=True).stdout  # fmt: skip
    return der, public


@pytest.mark.parametrize("algorithm", [["rsa:2048"], ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]])
def test_the_probe_reads_the_served_key_out_of_the_certificate_as_openssl_does(
    tmp_path: Path, algorithm: list[str]
) -> None:
    der, public = _certificate(tmp_path, algorithm)
    assert spki_of(der) == public
    assert tlsa_311(base64.b64encode(public).decode()) == "3 1 1 " + hashlib.sha256(spki_of(der)).hexdigest()


def test_a_hostile_certificate_is_an_error_not_a_crash_or_a_read_past_its_end(tmp_path: Path) -> None:
    der, _ = _certificate(tmp_path, ["rsa:2048"])
    for bad in (b"", b"\x30\x84\xff\xff\xff\xff", der[:200], b"\x30\x03\x02\x01\x00", b"\x30\x85" + b"\x01" * 9):
        with pytest.raises((ValueError, IndexError)):
            spki_of(bad)


def test_tlsa_records_are_judged_against_the_served_key_and_the_next_one() -> None:
    both = judge(["3 1 1 " + "AB" * 32, "3 1 1 " + "cd" * 32], "ab" * 32, "ee" * 32)
    assert both.matches and both.next_key
    alone = judge(["3 1 1 " + "ab" * 32], "ab" * 32, "ee" * 32)
    assert alone.matches and not alone.next_key and "only the key in use" in alone.rollover_detail
    other = judge(["3 1 1 " + "cd" * 32, "3 1 1 " + "ef" * 32], "ab" * 32, "ee" * 32)
    assert not other.matches and not other.next_key, "two records, neither the served key: no rollover either"
    whole = judge(["3 0 1 " + "ee" * 32, "2 1 1 " + "01" * 32], "ab" * 32, "ee" * 32)
    assert whole.matches and whole.next_key, "the whole certificate's digest, and a CA's key for the next"
    with pytest.raises(ValueRejected, match="is not TLSA data"):
        read_tlsa("3 1 1 not-hex; rm -rf /")
    assert records_for(["", "MCowBQYDK2VwAyEA"]) == (tlsa_311("MCowBQYDK2VwAyEA"),)


def _ask_with(records: tuple[str, ...]) -> dnssec.Ask:
    """A resolver whose only answer is ``records`` at the TLSA name (validation is replaced in these tests)."""
    import dns.message
    import dns.rrset

    def ask(name: str, rtype: str) -> dns.message.Message:
        query = dns.message.make_query(name, rtype)
        response = dns.message.make_response(query)
        if rtype == "TLSA" and records:
            response.answer.append(dns.rrset.from_text_list(name, 300, "IN", "TLSA", list(records)))
        return response

    return ask


def _rows(monkeypatch: pytest.MonkeyPatch, records: tuple[str, ...], state: str, keys: dict | None) -> dict:
    monkeypatch.setattr(dane_rows, "validate", lambda *a: Chain(state, (".",), f"{state} from the root"))
    return {r.name: r for r in dane_rows.tlsa_rows("mail.example.org", keys, _ask_with(records), ANCHOR)}


def test_check_rows_for_each_state_of_the_records(monkeypatch: pytest.MonkeyPatch) -> None:
    served = {"spki_sha256": "ab" * 32, "cert_sha256": "ee" * 32}
    named = "TLSA of mail.example.org names the key it serves on 25 (DANE)"
    rollover = "TLSA of mail.example.org: the next key published (rollover)"
    good = _rows(monkeypatch, ("3 1 1 " + "ab" * 32, "3 1 1 " + "cd" * 32), "secure", served)
    assert good[named].ok and good[rollover].ok
    none = _rows(monkeypatch, (), "secure", served)
    assert list(none) == [named] and not none[named].ok and "no TLSA at _25._tcp.mail.example.org" in none[named].detail
    unsigned = _rows(monkeypatch, ("3 1 1 " + "ab" * 32,), "insecure", served)
    assert list(unsigned) == [named] and unsigned[named].detail.startswith("not signed, so senders ignore it")
    bogus = _rows(monkeypatch, ("3 1 1 " + "ab" * 32,), "bogus", served)
    assert bogus[named].detail.startswith("BOGUS (senders defer your mail)")
    unread = _rows(monkeypatch, ("3 1 1 " + "ab" * 32,), "secure", None)
    assert not unread[named].ok and "not read" in unread[named].detail
    other = _rows(monkeypatch, ("3 1 1 " + "cd" * 32,), "secure", served)
    assert not other[named].ok and not other[rollover].ok
    assert dane_rows.tlsa_rows("mail.example.org", served, None, ANCHOR) == [], "no resolver for DNSSEC: no rows"


def test_posttls_finger_verified_only_when_it_says_so() -> None:
    assert finger_verdict("posttls-finger: Verified TLS connection established to a.example.net[198.51.100.1]:25")[0]
    failed = "posttls-finger: a.example.net[198.51.100.1]:25: Server certificate not verified\n"
    assert finger_verdict(failed) == (False, "a.example.net[198.51.100.1]:25: Server certificate not verified")
    assert finger_verdict("")[0] is False
    assert not finger_verdict("posttls-finger: Trusted TLS connection established to a.example.net[1.2.3.4]:25")[0]


def test_the_servers_resolver_is_debians_on_the_internet_and_told_the_root_in_a_world_of_its_own() -> None:
    part2 = Part2(Part1())
    internet = Dane(part2)
    assert internet.resolver() == [Packages(("unbound",))], "Debian's Unbound as packaged: nothing written"
    own = Dane(part2, "198.51.100.53", ANCHOR)
    files = {r.path: r for r in own.resolver() if isinstance(r, File)}
    assert set(files) == {UNBOUND_CONF, DEBIAN_ANCHOR_FILE, "/etc/default/unbound"}
    conf = files[UNBOUND_CONF].content
    assert f'trust-anchor: "{ANCHOR}"' in conf and "stub-addr: 198.51.100.53" in conf
    settings = ("infra-cache-max-rtt: 2000", "infra-keep-probing: yes", "infra-host-ttl: 5")
    assert all(setting in conf for setting in settings), "a root that was silent is asked again at once"
    kinds = [type(r).__name__ for r in own.resolver()]
    assert kinds == ["File", "Directory", "File", "Packages", "File"], "Unbound's first start: no IANA key to miss"
    assert files[UNBOUND_CONF].service == "unbound" and files[DEBIAN_ANCHOR_FILE].service is None
    assert own.use_resolver() == [File("/etc/resolv.conf", RESOLV_CONF, service="postfix", restart=True)]
    assert "nameserver 127.0.0.1" in RESOLV_CONF and "options trust-ad" in RESOLV_CONF
    record = own.records(["MCowBQYDK2VwAyEA", "MCowBQYDK2VwAyEB"])[0]
    assert record.name == "_25._tcp.mail.example.org" and record.rtype == "TLSA" and len(record.values) == 2


def test_a_dns_root_of_its_own_comes_from_the_environment_with_its_key() -> None:
    env = {"MAILKIT_TRUST_ANCHOR": ANCHOR, "MAILKIT_DNS_ROOT": "198.51.100.53"}
    assert target_of("admin@mail.example.net", env=env).dns_root == "198.51.100.53"
    assert target_of("admin@mail.example.net", env={}).dns_root is None
    with pytest.raises(ValueRejected, match=r"MAILKIT_DNS_ROOT: 'ns\.example\.net' is not an IP address"):
        target_of("admin@mail.example.net", env={**env, "MAILKIT_DNS_ROOT": "ns.example.net"})
    with pytest.raises(ValueRejected, match="comes without its root key"):
        target_of("admin@mail.example.net", env={"MAILKIT_DNS_ROOT": "198.51.100.53"})


def test_the_receiver_is_checked_by_dane_only_when_the_server_sends_to_it_itself() -> None:
    import dataclasses
    import types

    from mailkit.core.values import Hostname, Password
    from mailkit.guide.dane_checks import direct_receivers
    from mailkit.guide.part3 import Part3
    from mailkit.guide.smarthost import Smarthost

    receiver = types.SimpleNamespace(address="dana@example.net")
    direct = Part3(Part1())
    assert direct_receivers(receiver, direct) == ["example.net"]  # type: ignore[arg-type]
    relayed = dataclasses.replace(direct, smarthost=Smarthost(Hostname("relay.example.net"), "u", Password("x" * 20)))
    assert direct_receivers(receiver, relayed) == [], "through a relay, port 25 out may be closed: the relay checks"  # type: ignore[arg-type]
    assert direct_receivers(None, direct) == []
