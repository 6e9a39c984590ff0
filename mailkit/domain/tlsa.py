"""DANE (RFC 7672): the mail host's key in DNS, as TLSA records a sending server checks before it sends.

A sender that validates DNSSEC finds ``_25._tcp.<mx host>`` TLSA records, and then sends only over TLS to a server
whose certificate matches one of them: no downgrade to plain text, no certificate from a CA that was tricked. The
guide publishes ``3 1 1`` records (DANE-EE, the public key, SHA-256): they name the server's own key, so a renewed
certificate with the same key still matches, and no CA is involved at all.

A key change must never leave a moment when the key served is not published. So two keys are published all the time:
the one in use and the next one, already made on the server (the rollover scheme internet.nl asks for).

>>> tlsa_name("mail.example.org")
'_25._tcp.mail.example.org'
>>> tlsa_311("MCowBQYDK2VwAyEA")[:12]
'3 1 1 deb521'
>>> read_tlsa("3 1 1 6FC5B4")
Tlsa(usage=3, selector=1, matching=1, data='6fc5b4')
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mailkit.core.values import ValueRejected

#: The TLSA record the guide publishes: DANE-EE (3), the SubjectPublicKeyInfo (1), its SHA-256 (1).
DANE_EE_SPKI_SHA256 = (3, 1, 1)
_TLSA = re.compile(r"([0-9]{1,3})\s+([0-9]{1,3})\s+([0-9]{1,3})\s+([0-9A-Fa-f\s]{2,1024})")
_USAGES = {0: "PKIX-TA", 1: "PKIX-EE", 2: "DANE-TA", 3: "DANE-EE"}


def tlsa_name(host: str, port: int = 25) -> str:
    """Where a host's TLSA records for ``port`` are published."""
    return f"_{port}._tcp.{host.rstrip('.')}"


def spki_sha256(public_key: str) -> str:
    """The SHA-256 of a public key given as base64 DER (how :class:`~mailkit.core.resources.keys.PublicKey` reads
    it), in hex: what a ``3 1 1`` record holds."""
    try:
        der = base64.b64decode(public_key, validate=True)
    except (binascii.Error, ValueError):
        raise ValueRejected("public key", public_key[:40], "is not base64 DER") from None
    return hashlib.sha256(der).hexdigest()


def tlsa_311(public_key: str) -> str:
    """The ``3 1 1`` TLSA record data for a public key (base64 DER)."""
    return f"3 1 1 {spki_sha256(public_key)}"


@dataclass(frozen=True)
class Tlsa:
    """One TLSA record: certificate usage, selector (0 the whole certificate, 1 its public key), matching type (0 as
    is, 1 SHA-256, 2 SHA-512) and the data, lower-case hex."""

    usage: int
    selector: int
    matching: int
    data: str

    @property
    def label(self) -> str:
        return f"{self.usage} {self.selector} {self.matching} ({_USAGES.get(self.usage, 'unknown usage')})"

    def names(self, spki_sha256_hex: str, cert_sha256_hex: str) -> bool:
        """Whether this record names the served key or certificate (only SHA-256 digests are compared here).

        >>> [Tlsa(3, 1, 1, "ab").names("ab", "cd"), Tlsa(3, 0, 1, "cd").names("ab", "cd")]
        [True, True]
        >>> Tlsa(2, 1, 1, "ab").names("ab", "")  # a CA's key: the chain would be needed
        False
        """
        if self.usage != 3 or self.matching != 1:
            return False
        return self.data == (spki_sha256_hex if self.selector == 1 else cert_sha256_hex)


def read_tlsa(text: str) -> Tlsa:
    """A TLSA record's data as DNS shows it; a clear error when it is not one."""
    found = _TLSA.fullmatch(text.strip())
    if not found:
        raise ValueRejected("TLSA", text[:80], "is not TLSA data ('USAGE SELECTOR MATCHING HEX')")
    usage, selector, matching, data = found.groups()
    return Tlsa(int(usage), int(selector), int(matching), re.sub(r"\s", "", data).lower())


@dataclass(frozen=True)
class TlsaVerdict:
    """What a host's TLSA records say of the key it serves: ``matches`` one record names it; ``next_key`` another
    record is there for the key that comes after it (a DANE-EE key, or a CA's key: DANE-TA)."""

    matches: bool
    next_key: bool
    detail: str
    rollover_detail: str


def judge(records: Sequence[str], spki_sha256_hex: str, cert_sha256_hex: str) -> TlsaVerdict:
    """Compare a host's TLSA records with the key and certificate it served (their SHA-256, hex).

    >>> v = judge(["3 1 1 ab", "3 1 1 ef"], "ab", "cd")
    >>> v.matches, v.next_key, v.rollover_detail
    (True, True, 'a second record (3 1 1 (DANE-EE)) is published for the next key')
    >>> judge(["3 1 1 ef"], "ab", "cd").detail
    'no record names the key served (SHA-256 ab): senders using DANE defer mail to this host'
    """
    parsed = [read_tlsa(r) for r in records]
    named = [t for t in parsed if t.names(spki_sha256_hex, cert_sha256_hex)]
    others = [t for t in parsed if t not in named]
    if named:
        detail = f"{named[0].label} names the key served"
    else:
        detail = (
            f"no record names the key served (SHA-256 {spki_sha256_hex}): senders using DANE defer mail to this host"
        )
    if named and others:
        rollover = f"a second record ({others[0].label}) is published for the next key"
    elif named:
        rollover = (
            "only the key in use is published: a key change would stop mail from DANE senders until DNS caught up"
        )
    else:
        rollover = "no record names the key in use"
    return TlsaVerdict(bool(named), bool(named and others), detail, rollover)


def records_for(keys: Iterable[str]) -> tuple[str, ...]:
    """The ``3 1 1`` records for the given public keys (base64 DER), the same key once.

    >>> records_for(["MCowBQYDK2VwAyEA", "MCowBQYDK2VwAyEA"]) == (tlsa_311("MCowBQYDK2VwAyEA"),)
    True
    """
    return tuple(dict.fromkeys(tlsa_311(k) for k in keys if k))
