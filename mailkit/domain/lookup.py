"""Asking DNS as a receiving server would: a resolver's answers, pyspf's verdict, forward-confirmed reverse DNS.

>>> forward_confirmed("198.51.100.25", "mail.example.org", lambda name, rtype: ())
(False, ())
"""

from __future__ import annotations

import ipaddress
from typing import Any

from mailkit.core.errors import MailkitError
from mailkit.domain.records import Lookup


def resolver_lookup(nameserver: str | None, *, timeout: float = 5.0) -> Lookup:
    """Ask a recursive resolver (``nameserver``, or the system's) for the rdata of a name and type; ``()`` if none."""
    import dns.exception
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=nameserver is None)
    if nameserver is not None:
        resolver.nameservers = [nameserver]
    resolver.cache = None

    def lookup(name: str, rtype: str) -> tuple[str, ...]:
        try:
            answer = resolver.resolve(name.rstrip(".") + ".", rtype, lifetime=timeout, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return ()
        except dns.exception.DNSException as exc:
            raise MailkitError(f"no answer for {name} {rtype}: {exc}") from None
        return tuple(rd.to_text() for rd in answer)

    return lookup


def remembered(lookup: Lookup) -> Lookup:
    """``lookup`` asking each name and type once: one run of checks sees one answer per question (DMARC's record is
    read by its lint, its tree walk and each report destination's). A failure is not remembered: asked again.

    >>> asked = []
    >>> once = remembered(lambda name, rtype: asked.append(name) or ("v=DMARC1; p=none",))
    >>> once("_dmarc.example.org", "TXT") == once("_dmarc.example.org", "TXT"), asked
    (True, ['_dmarc.example.org'])
    """
    answers: dict[tuple[str, str], tuple[str, ...]] = {}

    def ask(name: str, rtype: str) -> tuple[str, ...]:
        key = (name.rstrip(".").lower(), rtype.upper())
        if key not in answers:
            answers[key] = tuple(lookup(name, rtype))
        return answers[key]

    return ask


def spf_result(ip: str, sender: str, helo: str, nameserver: str | None) -> str:
    """pyspf's verdict (pass, fail, softfail, ...) for mail from ``sender`` sent by ``ip``, asking ``nameserver``."""
    import dns.exception
    import dns.resolver
    import spf

    resolver = dns.resolver.Resolver(configure=nameserver is None)
    if nameserver is not None:
        resolver.nameservers = [nameserver]

    def lookup(name: str, qtype: str, tcpfallback: bool = True, timeout: int = 30) -> list[tuple[Any, Any]]:
        try:
            answers = resolver.resolve(name, qtype, lifetime=timeout)
        except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
            return []
        except dns.exception.DNSException as exc:
            raise spf.TempError(f"DNS {exc}") from None
        shown = {
            "A": lambda r: r.address,
            "AAAA": lambda r: r.address,
            "MX": lambda r: (r.preference, r.exchange),
            "PTR": lambda r: r.target.to_text(True),
            "TXT": lambda r: r.strings,
        }[qtype]
        return [((name, qtype), shown(r)) for r in answers]

    usual, spf.DNSLookup = spf.DNSLookup, lookup  # pyspf asks its module-level lookup function
    try:
        return str(spf.check2(i=ip, s=sender, h=helo)[0])
    finally:
        spf.DNSLookup = usual


def server_addresses(hostname: str, lookup: Lookup) -> dict[str, list[str]]:
    """The server's published addresses by family: ``{"4": [...], "6": [...]}``."""
    return {
        "4": sorted(a for a in lookup(hostname, "A") if not a.endswith(".")),
        "6": sorted(a for a in lookup(hostname, "AAAA") if not a.endswith(".")),
    }


def forward_confirmed(address: str, hostname: str, lookup: Lookup) -> tuple[bool, tuple[str, ...]]:
    """Whether ``address``'s PTR names ``hostname`` alone and that name has ``address`` (FCrDNS); and the PTR
    names as published.

    >>> forward_confirmed("198.51.100.25", "mail.example.org", lambda name, rtype: ())
    (False, ())
    """
    names = lookup(ipaddress.ip_address(address).reverse_pointer, "PTR")
    rtype = "AAAA" if ":" in address else "A"
    back = [a for n in names for a in lookup(n.rstrip("."), rtype)]
    return [n.rstrip(".") for n in names] == [hostname] and address in back, names
