"""DNS records as desired state: read what a nameserver answers, show the difference, publish or print.

A record set is a name, a type and its values, written as zone-file rdata (a TXT value is its quoted
strings). Planning asks a nameserver (the lab's, or any one given) and changes nothing; how records get
published is the target's business (:meth:`mailkit.server.target.Target.publish`).

>>> spf = RecordSet("example.org", "TXT", (txt("v=spf1 mx -all"),))
>>> spf.zone_lines()
['example.org. 300 IN TXT "v=spf1 mx -all"']
>>> len(txt("p=" + "A" * 400).split('" "'))
2
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mailkit.core.errors import MailkitError
from mailkit.core.values import ValueRejected

RDTYPES = ("A", "AAAA", "MX", "TXT", "PTR", "CNAME", "TLSA")
_TXT_CHUNK = 255
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


def record_name(name: str) -> str:
    """A DNS owner name: host names plus the ``_`` labels of DKIM and DMARC (``_dmarc.example.org``).

    >>> record_name("s202611._domainkey.Example.org.")
    's202611._domainkey.example.org'
    """
    text = name.removesuffix(".").lower()
    if not text.isascii() or len(text) > 253 or "." not in text or not all(map(_LABEL.fullmatch, text.split("."))):
        raise ValueRejected(
            "record name", name, "is not a DNS name (letters, digits, '-', '_' in dot-separated labels)"
        )
    return text


def txt(value: str) -> str:
    """TXT rdata for ``value``: quoted strings of at most 255 bytes (a DKIM RSA-2048 key needs two).

    >>> txt('v=DMARC1; p=none')
    '"v=DMARC1; p=none"'
    """
    if any(c in value for c in '"\\\n\r\0') or not value.isascii():
        raise ValueRejected("TXT value", value, "holds a quote, backslash, control or non-ASCII character")
    chunks = [value[i : i + _TXT_CHUNK] for i in range(0, len(value), _TXT_CHUNK)] or [""]
    return " ".join(f'"{chunk}"' for chunk in chunks)


def txt_text(rdata: str) -> str:
    """The text a TXT rdata holds, its strings joined (how SPF, DKIM and DMARC read it).

    >>> txt_text('"v=DKIM1; k=rsa; p=MIIB" "IjAN"')
    'v=DKIM1; k=rsa; p=MIIBIjAN'
    """
    import shlex

    return "".join(shlex.split(rdata))


@dataclass(frozen=True)
class RecordSet:
    """Every record of one type at one name (an empty ``values`` means: no such records)."""

    name: str
    rtype: str
    values: tuple[str, ...]
    ttl: int = 300

    def __post_init__(self) -> None:
        record_name(self.name)
        if self.rtype not in RDTYPES:
            raise ValueRejected("record type", self.rtype, f"is not one of {', '.join(RDTYPES)}")
        object.__setattr__(self, "name", self.name.removesuffix(".").lower())
        object.__setattr__(self, "values", tuple(self.values))

    def same_as(self, seen: Iterable[str]) -> bool:
        """True when ``seen`` (rdata text from a nameserver) holds exactly these values."""
        return sorted(map(_normal, seen)) == sorted(map(_normal, self.values))

    def zone_lines(self) -> list[str]:
        return [f"{self.name}. {self.ttl} IN {self.rtype} {value}" for value in self.values]


def _normal(rdata: str) -> str:
    return txt_text(rdata) if rdata.startswith('"') else rdata.rstrip(".").lower()


@dataclass(frozen=True)
class RecordChange:
    """One record set that differs: what the nameserver answered and what is wanted."""

    wanted: RecordSet
    seen: tuple[str, ...]

    def diff(self) -> str:
        """Old and new records; a long value (a DKIM key) is shortened, its length kept, to stay readable."""
        old = [f"-{self.wanted.name}. IN {self.wanted.rtype} {_short(v)}" for v in self.seen]
        new = [f"+{self.wanted.name}. {self.wanted.ttl} IN {self.wanted.rtype} {_short(v)}" for v in self.wanted.values]
        return "\n".join([*old, *new])


def _short(rdata: str, keep: int = 60) -> str:
    """``rdata`` as is, or its start and end around the number of characters left out.

    >>> _short('"v=DKIM1; k=rsa; p=' + "A" * 380 + 'IDAQAB"')
    '"v=DKIM1; k=rsa; p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA ...(339 more)... IDAQAB"'
    """
    if len(rdata) <= 2 * keep:
        return rdata
    return f"{rdata[:keep]} ...({len(rdata) - keep - 7} more)... {rdata[-7:]}"


@dataclass(frozen=True)
class RecordPlan:
    """The record sets that differ from what the nameserver answers."""

    changes: tuple[RecordChange, ...]
    nameserver: str

    def __bool__(self) -> bool:
        return bool(self.changes)

    def __str__(self) -> str:
        if not self.changes:
            return f"DNS: no change (as answered by {self.nameserver})"
        return "\n".join(change.diff() for change in self.changes)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


class ZoneText(str):
    """Zone-file lines, shown as they are in a notebook (not as a quoted string)."""

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


Lookup = Callable[[str, str], tuple[str, ...]]


def lookup_at(nameserver: str, *, timeout: float = 5.0) -> Lookup:
    """Ask ``nameserver`` directly (no recursion, no cache) for the rdata of a name and type."""
    import dns.exception
    import dns.flags
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype

    def lookup(name: str, rtype: str) -> tuple[str, ...]:
        query = dns.message.make_query(name.rstrip(".") + ".", rtype)
        try:
            response = dns.query.udp(query, nameserver, timeout=timeout)
            if response.flags & dns.flags.TC:
                response = dns.query.tcp(query, nameserver, timeout=timeout)
        except dns.exception.DNSException as exc:
            raise MailkitError(f"{nameserver} did not answer for {name} {rtype}: {exc}") from None
        if response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise MailkitError(f"{nameserver} answered {dns.rcode.to_text(response.rcode())} for {name} {rtype}")
        wanted = dns.rdatatype.from_text(rtype)
        return tuple(rd.to_text() for rrset in response.answer if rrset.rdtype == wanted for rd in rrset)

    return lookup


def plan(records: Sequence[RecordSet], lookup: Lookup, nameserver: str) -> RecordPlan:
    """Compare ``records`` with what ``lookup`` answers; changes nothing."""
    changes = []
    for record in records:
        seen = lookup(record.name, record.rtype)
        if not record.same_as(seen):
            changes.append(RecordChange(record, seen))
    return RecordPlan(tuple(changes), nameserver)


def zone_text(records: Sequence[RecordSet]) -> ZoneText:
    """The records in zone-file syntax, to paste at a DNS provider."""
    return ZoneText("\n".join(line for record in records for line in record.zone_lines()) + "\n")
