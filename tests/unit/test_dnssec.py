"""DNSSEC validation from a trust anchor down: secure, insecure and bogus chains, each from zones signed here with
real keys (dnspython and cryptography); the lab's signed zones are checked in tests/lab/test_80_check.py."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import dns.dnssec
import dns.message
import dns.name
import dns.rdatatype
import dns.rrset
from cryptography.hazmat.primitives.asymmetric import ec

from mailkit.core.errors import MailkitError
from mailkit.domain.dnssec import Chain, validate

ALGORITHM = dns.dnssec.Algorithm.ECDSAP256SHA256


@dataclass
class Zone:
    """A zone signed with one key (a CSK, flags 257, as BIND's default policy makes), its records by owner and type."""

    origin: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    records: dict[tuple[str, str], dns.rrset.RRset] = field(default_factory=dict)

    def dnskey(self) -> dns.rrset.RRset:
        key = dns.dnssec.make_dnskey(self.key.public_key(), ALGORITHM, flags=257)
        return dns.rrset.from_rdata(self.origin, 300, key)

    def ds(self, digest: str = "SHA256") -> str:
        return dns.dnssec.make_ds(self.origin, self.dnskey()[0], digest).to_text()

    def add(self, owner: str, rtype: str, *values: str) -> None:
        self.records[(owner, rtype)] = dns.rrset.from_text_list(owner, 300, "IN", rtype, list(values))

    def signed(self, owner: str, rtype: str, by: Zone | None = None) -> list[dns.rrset.RRset]:
        """The set and its RRSIG, signed by this zone's key (or ``by``'s, to forge one)."""
        rrset = self.dnskey() if (owner, rtype) == (self.origin, "DNSKEY") else self.records.get((owner, rtype))
        if rrset is None:
            return []
        signer = by or self
        sig = dns.dnssec.sign(rrset, signer.key, dns.name.from_text(self.origin), signer.dnskey()[0], lifetime=3600)
        return [rrset, dns.rrset.from_rdata(owner, 300, sig)]


class World:
    """What a resolver would hand over (with the signatures, checking disabled) for a few zones."""

    def __init__(self, *zones: Zone) -> None:
        self.zones = {z.origin: z for z in zones}
        self.forged: set[tuple[str, str]] = set()

    def ask(self, name: str, rtype: str) -> dns.message.Message:
        response = dns.message.make_response(dns.message.make_query(name, rtype, want_dnssec=True))
        owner = dns.name.from_text(name)
        holders = [z for z in self.zones.values() if owner.is_subdomain(dns.name.from_text(z.origin))]
        if rtype == "DS":  # the parent answers for a cut
            holders = [z for z in holders if z.origin != name]
        if not holders:
            return response
        zone = max(holders, key=lambda z: len(dns.name.from_text(z.origin)))
        if rtype == "SOA" and name != zone.origin:
            return response
        if rtype == "SOA":
            zone.add(name, "SOA", "ns.example.net. hostmaster.example.net. 1 3600 600 86400 300")
        forger = Zone(zone.origin) if (name, rtype) in self.forged else None
        response.answer += zone.signed(name, rtype, by=forger)
        return response


def _world(*, ds_in_root: bool = True, ds_of: Zone | None = None) -> tuple[World, str]:
    root, org = Zone("."), Zone("example.org.")
    org.add("example.org.", "MX", "10 mail.example.org.")
    org.add("mail.example.org.", "A", "198.51.100.25")
    if ds_in_root:
        root.add("example.org.", "DS", (ds_of or org).ds())
    return World(root, org), ". IN DS " + root.ds()


def test_a_signed_domain_is_secure_from_the_root_down() -> None:
    world, anchor = _world()
    chain = validate("example.org", "MX", world.ask, anchor)
    assert chain == Chain("secure", (".", "example.org."), "MX signed, valid from the root: . > example.org.")
    assert validate("mail.example.org", "A", world.ask, anchor).state == "secure", "a name below the apex"


def test_a_zone_whose_parent_has_no_ds_is_insecure() -> None:
    world, anchor = _world(ds_in_root=False)
    chain = validate("mail.example.org", "A", world.ask, anchor)
    assert (chain.state, chain.detail) == ("insecure", "no DS for example.org. in .")


@pytest.mark.parametrize(
    ("broken", "said"),
    [
        ("a DS naming another key", "no DNSKEY of example.org. matches its DS at the parent"),
        ("an answer signed by another key", "the MX of example.org. in example.org.:"),
        ("another root key than the anchor", "the root's keys do not match the trust anchor"),
        ("a DS signed by another key", "the DS of example.org. in .:"),
    ],
)
def test_what_a_validating_resolver_refuses_is_bogus(broken: str, said: str) -> None:
    world, anchor = _world(ds_of=Zone("example.org.") if broken == "a DS naming another key" else None)
    if broken == "an answer signed by another key":
        world.forged.add(("example.org.", "MX"))
    if broken == "a DS signed by another key":
        world.forged.add(("example.org.", "DS"))
    if broken == "another root key than the anchor":
        anchor = ". IN DS " + Zone(".").ds()
    chain = validate("example.org", "MX", world.ask, anchor)
    assert chain.state == "bogus" and chain.detail.startswith(said), chain


def test_a_name_without_the_record_asked_cannot_be_told() -> None:
    world, anchor = _world()
    with pytest.raises(MailkitError, match=r"no AAAA for example\.org\. to check"):
        validate("example.org", "AAAA", world.ask, anchor)


def test_a_resolver_that_strips_the_signatures_cannot_tell() -> None:
    world, anchor = _world()

    def stripped(name: str, rtype: str) -> dns.message.Message:
        response = world.ask(name, rtype)
        response.answer = [r for r in response.answer if r.rdtype != dns.rdatatype.RRSIG]
        return response

    with pytest.raises(MailkitError, match="hands over no DNSSEC signatures"):
        validate("example.org", "MX", stripped, anchor)


def test_mailkit_checks_rows_for_the_mx_and_the_mail_hosts_address() -> None:
    from mailkit.status.dnschecks import dnssec_rows

    world, anchor = _world()
    rows = dnssec_rows(["example.org"], "mail.example.org", world.ask, anchor)
    assert [(r.key, r.ok, r.part) for r in rows] == [
        ("dnssec / MX of example.org signed (DNSSEC)", True, 3),
        ("dnssec / A of mail.example.org signed (DNSSEC)", True, 3),
    ]
    world, anchor = _world(ds_in_root=False)
    assert [r.detail for r in dnssec_rows(["example.org"], "mail.example.org", world.ask, anchor)] == [
        "not signed: no DS for example.org. in .",
        "not signed: no DS for example.org. in .",
    ]
    world, anchor = _world(ds_of=Zone("example.org."))
    (mx, _) = dnssec_rows(["example.org"], "mail.example.org", world.ask, anchor)
    assert not mx.ok and mx.detail.startswith("BOGUS (validating resolvers refuse it): no DNSKEY of example.org.")
    assert dnssec_rows(["example.org"], "mail.example.org", None, anchor) == []
