"""DNSSEC, checked the way a validating resolver checks it: from a trust anchor (the root's key) down to a name.

Each zone on the way proves its keys: its parent signed a DS record naming one of them, and that key signed the
zone's DNSKEY set. The answer asked for (a domain's MX, the mail host's address) is then checked against the keys of
the zone that holds it. Three outcomes, as a resolver sees them:

- **secure**: every signature and digest matches, from the anchor down;
- **insecure**: a zone on the way has no DS at its parent: nothing below it is signed (most domains, still);
- **bogus**: a DS names no key, a signature does not match or has expired: a validating resolver then answers
  nothing at all (SERVFAIL), and mail to the domain stops. Worse than not signing.

Answers come from one resolver, asked with the DO bit (send the signatures) and CD (checking disabled: a validating
resolver hands over even what it would refuse, so it can be told what is wrong).

>>> str(ROOT_ANCHOR.split()[3])  # IANA's root key since 2017 (KSK-2017), as its DS record
'20326'
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailkit.core.errors import MailkitError
from mailkit.core.values import ValueRejected

if TYPE_CHECKING:
    import dns.message
    import dns.name
    import dns.rdata
    import dns.rrset

#: The root zone's trust anchor as IANA publishes it (root-anchors.xml), a DS record: the one fact everything trusts.
ROOT_ANCHOR = ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D"
#: At most this many labels are walked (a name deeper than that is not a mail domain).
MAX_LABELS = 10

#: Asks the resolver ``name``, ``rtype`` with the DO and CD bits; the whole response.
Ask = Callable[[str, str], "dns.message.Message"]


_ANCHOR = re.compile(r"^\.\s+(?:IN\s+)?DS\s+([0-9]{1,5})\s+([0-9]{1,3})\s+([0-9]{1,3})\s+([0-9A-Fa-f]{40,128})$")


def trust_anchor(text: str, field: str = "TRUST_ANCHOR") -> str:
    """A root trust anchor as given (a DS record of ``.``), checked and written one way.

    >>> trust_anchor(".  DS 20326 8 2 e06d44b80b8f1d39a95c0b0d7c65d08458e880409bbc683457104237c7f8ec8d") == ROOT_ANCHOR
    True
    >>> trust_anchor("example.org. IN DS 1 8 2 00")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mailkit.core.values.ValueRejected: TRUST_ANCHOR: 'example.org. IN DS 1 8 2 00' is not the root's DS record ...
    """
    found = _ANCHOR.match(text.strip())
    if not found:
        raise ValueRejected(field, text, "is not the root's DS record ('. IN DS TAG ALGORITHM DIGEST-TYPE HEX')")
    tag, algorithm, digest_type, digest = found.groups()
    return f". IN DS {int(tag)} {int(algorithm)} {int(digest_type)} {digest.upper()}"


@dataclass(frozen=True)
class Chain:
    """What DNSSEC says of an answer: ``state`` is ``secure``, ``insecure`` or ``bogus``; ``zones`` the zones walked
    from the root; ``detail`` what was found (for a bogus one, the first thing that failed)."""

    state: str
    zones: tuple[str, ...]
    detail: str


def _dnssec() -> None:
    """dnspython's DNSSEC module, imported once without cryptography's warnings about algorithms nobody uses."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import dns.dnssec  # noqa: F401


def resolver_ask(nameserver: str | None, *, timeout: float = 5.0) -> Ask:
    """Ask ``nameserver`` (or the system's first resolver) with DO and CD, over UDP, TCP when the answer is cut."""
    import dns.flags
    import dns.message
    import dns.query
    import dns.resolver

    def ask(name: str, rtype: str) -> dns.message.Message:
        query = dns.message.make_query(name.rstrip(".") + ".", rtype, want_dnssec=True, payload=4096)
        query.flags |= dns.flags.CD
        server = nameserver or "the system's resolver"
        try:
            server = nameserver or str(dns.resolver.Resolver().nameservers[0])
            answer, _ = dns.query.udp_with_fallback(query, server, timeout=timeout)
        except Exception as exc:  # dnspython's own errors (no resolv.conf too) and the socket's
            raise MailkitError(f"no answer from {server} for {name} {rtype}: {exc}") from None
        return answer

    return ask


def _rrsets(message: dns.message.Message, owner: dns.name.Name, rtype: str) -> tuple[dns.rrset.RRset | None, ...]:
    """The ``rtype`` set of ``owner`` in the answer section, and its signatures (None for either when absent)."""
    import dns.rdatatype

    wanted = dns.rdatatype.from_text(rtype)
    found = sigs = None
    for rrset in message.answer:
        if rrset.name != owner:
            continue
        if rrset.rdtype == wanted:
            found = rrset
        elif rrset.rdtype == dns.rdatatype.RRSIG and rrset.covers == wanted:
            sigs = rrset
    return found, sigs


def _is_apex(ask: Ask, name: dns.name.Name) -> bool:
    """Whether a zone starts at ``name`` (its SOA is its own)."""
    soa, _ = _rrsets(ask(name.to_text(), "SOA"), name, "SOA")
    return soa is not None


def _names(ds: dns.rdata.Rdata, zone: dns.name.Name, key: dns.rdata.Rdata) -> bool:
    """Whether the DS record ``ds`` names ``key`` (a digest type this side cannot compute names nothing)."""
    import dns.dnssec

    try:
        return bool(dns.dnssec.make_ds(zone, key, ds.digest_type) == ds)  # type: ignore[attr-defined]
    except (dns.dnssec.UnsupportedAlgorithm, ValueError):
        return False


def _keys_for(ask: Ask, zone: dns.name.Name, ds_set: dns.rrset.RRset) -> tuple[dns.rrset.RRset | None, str]:
    """The zone's DNSKEY set once a key named by ``ds_set`` signed it; else None and why not."""
    import dns.dnssec

    keys, sigs = _rrsets(ask(zone.to_text(), "DNSKEY"), zone, "DNSKEY")
    if keys is None or sigs is None:
        return (
            None,
            f"{zone.to_text()} has DS at its parent but {'no DNSKEY' if keys is None else 'an unsigned DNSKEY'}",
        )
    named = [key for key in keys for ds in ds_set if _names(ds, zone, key)]
    if not named:
        return None, f"no DNSKEY of {zone.to_text()} matches its DS at the parent"
    try:
        dns.dnssec.validate(keys, sigs, {zone: dns.rrset.from_rdata_list(zone, keys.ttl, named)})
    except dns.dnssec.ValidationFailure as exc:
        return None, f"the DNSKEY set of {zone.to_text()} is not signed by the key its DS names: {exc}"
    return keys, ""


def _not_proven(
    rrset: dns.rrset.RRset, sigs: dns.rrset.RRset | None, zone: dns.name.Name, keys: dns.rrset.RRset, what: str
) -> str:
    """Why ``zone``'s ``keys`` do not prove ``rrset`` (``what``, as said), or "" when they do."""
    import dns.dnssec

    if sigs is None:
        return f"{what} is not signed"
    try:
        dns.dnssec.validate(rrset, sigs, {zone: keys})
    except dns.dnssec.ValidationFailure as exc:
        return f"{what} in {zone.to_text()}: {exc}"
    return ""


def validate(name: str, rtype: str, ask: Ask, anchor: str = ROOT_ANCHOR) -> Chain:
    """Walk from ``anchor`` to ``name`` and check the ``rtype`` answer there (see the module's text); raise when there
    is no such answer, or no answer at all."""
    _dnssec()
    import dns.dnssec
    import dns.name
    import dns.rrset

    target = dns.name.from_text(name.rstrip(".") + ".")
    if len(target.labels) > MAX_LABELS + 1:
        raise MailkitError(f"{name} has more than {MAX_LABELS} labels")
    trusted = dns.rrset.from_text_list(".", 0, "IN", "DS", [anchor.split(" DS ", 1)[1]])
    zone, walked = dns.name.root, ["."]
    root_keys, root_sigs = _rrsets(ask(".", "DNSKEY"), zone, "DNSKEY")
    if root_keys is None or root_sigs is None:  # a resolver that strips them (a stub, a filtering one) tells nothing
        raise MailkitError(
            "the resolver hands over no DNSSEC signatures (the root's keys came without them): "
            "name one that does with --nameserver"
        )
    keys, why = _keys_for(ask, zone, trusted)
    if keys is None:
        return Chain("bogus", tuple(walked), f"the root's keys do not match the trust anchor: {why}")
    for depth in range(len(target.labels) - 2, -1, -1):
        below = dns.name.Name(target.labels[depth:])
        ds_set, ds_sigs = _rrsets(ask(below.to_text(), "DS"), below, "DS")
        if ds_set is None:
            if _is_apex(ask, below):  # a zone starts here, and its parent names no key: not signed from here on
                walked.append(below.to_text())
                return Chain("insecure", tuple(walked), f"no DS for {below.to_text()} in {zone.to_text()}")
            continue
        why = _not_proven(ds_set, ds_sigs, zone, keys, f"the DS of {below.to_text()}")
        if why:
            return Chain("bogus", tuple(walked), why)
        walked.append(below.to_text())
        zone = below
        keys, why = _keys_for(ask, zone, ds_set)
        if keys is None:
            return Chain("bogus", tuple(walked), why)
    answer, sigs = _rrsets(ask(target.to_text(), rtype), target, rtype)
    if answer is None:
        raise MailkitError(f"no {rtype} for {target.to_text()} to check")
    why = _not_proven(answer, sigs, zone, keys, f"the {rtype} of {target.to_text()}")
    if why:
        return Chain("bogus", tuple(walked), why)
    return Chain("secure", tuple(walked), f"{rtype} signed, valid from the root: {' > '.join(walked)}")


def answer_texts(ask: Ask, name: str, rtype: str) -> tuple[str, ...]:
    """The ``rtype`` records at ``name`` as the resolver hands them over (rdata text; none: empty)."""
    import dns.name

    owner = dns.name.from_text(name.rstrip(".") + ".")
    found, _ = _rrsets(ask(owner.to_text(), rtype), owner, rtype)
    return tuple(rdata.to_text() for rdata in found) if found is not None else ()
