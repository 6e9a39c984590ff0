"""Publishing DNS records by RFC 2136 dynamic update, signed with a TSIG key: a registrar command for a DNS server
you may update (your own BIND, Knot or PowerDNS, or a provider that takes RFC 2136 updates).

:meth:`mailkit.server.target.Target.publish` hands zone text to a registrar command (``MAILKIT_REGISTRAR``);
``mailkit registrar rfc2136 --server ADDRESS --key-file FILE`` is one, written here: it reads that zone text,
finds the zone of each name from the server's own SOA answers, and replaces (or deletes) each record set in one
update per zone. The key file is the one ``tsig-keygen`` writes (BIND's ``key`` statement); it is a secret, read
only when its owner alone can read it.

>>> records = parse_zone_text('example.org. 300 IN TXT "v=spf1 mx -all"\\n; delete a.example.org. TXT\\n')
>>> [(r.name, r.rtype, r.values) for r in records]
[('example.org', 'TXT', ('"v=spf1 mx -all"',)), ('a.example.org', 'TXT', ())]
>>> read_tsig_key_text('key "student01.example.org." { algorithm hmac-sha256; secret "c2VjcmV0c2VjcmV0"; };').name
'student01.example.org.'
"""

from __future__ import annotations

import base64
import binascii
import errno
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mailkit.core.errors import MailkitError, UsageError
from mailkit.core.values import Hostname, ValueRejected
from mailkit.domain.records import RecordSet

#: What a zone text may hold (it comes from a pipe or a file a person hands over).
MAX_ZONE_TEXT = 256 * 1024
MAX_KEY_FILE = 4096
ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512")
_KEY = re.compile(
    r'^\s*key\s+"(?P<name>[A-Za-z0-9._-]{1,253})"\s*\{\s*'
    r"algorithm\s+\"?(?P<algorithm>[a-z0-9-]+)\"?\s*;\s*"
    r'secret\s+"(?P<secret>[A-Za-z0-9+/=]{16,512})"\s*;\s*\}\s*;\s*$'
)
_TYPES = ("A", "AAAA", "CNAME", "MX", "TXT", "CAA", "TLSA", "SRV", "PTR", "NS", "DS")


@dataclass(frozen=True)
class TsigKey:
    """A TSIG key: its name, algorithm and secret (base64; never in a repr)."""

    name: str
    algorithm: str
    secret: str = field(repr=False)

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueRejected("algorithm", self.algorithm, f"is not one of {', '.join(ALGORITHMS)}")
        try:
            base64.b64decode(self.secret, validate=True)
        except (binascii.Error, ValueError):
            raise UsageError(f"the secret of TSIG key {self.name} is not base64") from None


def read_tsig_key_text(text: str) -> TsigKey:
    """The one ``key`` statement of a key file, as ``tsig-keygen`` writes it; an error that never shows the secret."""
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("#", "//")))
    match = _KEY.match(" ".join(body.split()))
    if match is None:
        raise UsageError('a TSIG key file holds one statement: key "NAME" { algorithm hmac-sha256; secret "..."; };')
    return TsigKey(match["name"], match["algorithm"], match["secret"])


def read_tsig_key(path: Path) -> TsigKey:
    """The key in ``path``: a regular file (never through a symlink) that only its owner can read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        why = "it is a symlink" if exc.errno == errno.ELOOP else exc.strerror
        raise UsageError(f"cannot read the TSIG key file {path}: {why}") from None
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(stream.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"the TSIG key file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise UsageError(f"the TSIG key file {path} can be read by others: chmod 600 {path}")
        data = stream.read(MAX_KEY_FILE + 1)
    if len(data) > MAX_KEY_FILE:
        raise UsageError(f"the TSIG key file {path} is longer than a key file ({MAX_KEY_FILE} bytes)")
    return read_tsig_key_text(data.decode("utf-8", errors="replace"))


def parse_zone_text(text: str) -> list[RecordSet]:
    """The records of zone text as :meth:`mailkit.server.target.Target.publish` writes it (``; delete`` lines included).

    Names must be host names, types one of the usual ones, TTLs whole seconds up to a week: anything else is
    refused with its line number, before anything is sent.
    """
    if len(text) > MAX_ZONE_TEXT:
        raise UsageError(f"zone text longer than {MAX_ZONE_TEXT} bytes")
    found: dict[tuple[str, str], list[str]] = {}
    ttls: dict[tuple[str, str], int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words:
            continue
        if words[0] == ";":
            if len(words) == 4 and words[1] == "delete":
                found.setdefault((_name(words[2], number), _type(words[3], number)), [])
            continue
        if len(words) < 5 or words[2] != "IN" or not words[1].isdigit() or not 0 < int(words[1]) <= 604800:
            raise UsageError(f"zone text line {number}: not 'NAME TTL IN TYPE VALUE' (TTL up to 604800)")
        key = (_name(words[0], number), _type(words[3], number))
        found.setdefault(key, []).append(line.split(None, 4)[4])
        ttls[key] = int(words[1])
    return [
        RecordSet(name, rtype, tuple(values), ttls.get((name, rtype), 300)) for (name, rtype), values in found.items()
    ]


def _name(word: str, number: int) -> str:
    name = word.rstrip(".").lower()
    try:
        Hostname(name.replace("_", "x"), field="NAME")  # _dmarc, _domainkey, _mta-sts are names too
    except (ValueRejected, UsageError):
        raise UsageError(f"zone text line {number}: {word[:80]!r} is not a DNS name") from None
    return name


def _type(word: str, number: int) -> str:
    if word.upper() not in _TYPES:
        raise UsageError(f"zone text line {number}: record type {word[:20]!r} is not one of {', '.join(_TYPES)}")
    return word.upper()


def zone_of(name: str, server: str, timeout: float = 5) -> str:
    """The zone holding ``name``, as ``server`` answers for it (the closest enclosing SOA)."""
    import dns.exception
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server]
    resolver.lifetime = timeout
    try:
        return str(dns.resolver.zone_for_name(name.rstrip(".") + ".", resolver=resolver))
    except dns.exception.DNSException as exc:
        raise MailkitError(f"{server} names no zone for {name}: {exc}") from None


def publish_rfc2136(records: Sequence[RecordSet], server: str, key: TsigKey, timeout: float = 10) -> list[str]:
    """Replace (or, with no values, delete) each record set at ``server``: one signed update per zone, all of a
    zone's sets or none. Returns the zones updated; a refusal names the zone and the server's answer."""
    import dns.exception
    import dns.query
    import dns.rcode
    import dns.tsigkeyring
    import dns.update

    keyring = dns.tsigkeyring.from_text({key.name: key.secret})
    by_zone: dict[str, list[RecordSet]] = {}
    for record in records:
        by_zone.setdefault(zone_of(record.name, server), []).append(record)
    for zone, sets in by_zone.items():
        update = dns.update.Update(zone, keyring=keyring, keyalgorithm=key.algorithm)
        for record in sets:
            fqdn = record.name.rstrip(".") + "."
            if record.values:
                update.replace(fqdn, record.ttl, record.rtype, *record.values)
            else:
                update.delete(fqdn, record.rtype)
        try:
            response = dns.query.tcp(update, server, timeout=timeout)
        except (dns.exception.DNSException, OSError) as exc:
            raise MailkitError(f"the update of {zone} at {server} failed: {exc}") from None
        if response.rcode() != dns.rcode.NOERROR:
            names = ", ".join(sorted({r.name for r in sets}))
            raise MailkitError(
                f"{server} refused the update of {zone} ({dns.rcode.to_text(response.rcode())}): "
                f"key {key.name} may not change {names}"
            )
    return list(by_zone)
