"""Part 3 section 13's checks: the server's resolver proves answers, its TLSA records are published, and Postfix's own
DANE client (``posttls-finger -l dane``, what a reader types) verifies a server by its TLSA records.

``posttls-finger`` resolves and connects exactly as Postfix's smtp client would with ``smtp_tls_security_level =
dane``: through the server's resolver, MX then TLSA, then the TLS handshake. Its last words say how it went:

>>> said = "posttls-finger: Verified TLS connection established to mail.example.org[198.51.100.25]:25: TLSv1.3"
>>> finger_verdict(said)
(True, 'Verified TLS connection established to mail.example.org')
>>> finger_verdict("posttls-finger: Untrusted TLS connection established to mail.example.org[198.51.100.25]:25")
(False, 'Untrusted TLS connection established to mail.example.org')
"""

from __future__ import annotations

import re

from mailkit.core.checks import CheckResult
from mailkit.core.ssh import Connection
from mailkit.core.text import shorten
from mailkit.domain.records import Lookup, plan
from mailkit.guide.dane import Dane
from mailkit.guide.part3 import GUIDE, Part3
from mailkit.server.target import Receiver

#: What posttls-finger says of the connection it made (Postfix's words, as in its log).
#: The host is named without the address it was reached at (IPv6 or IPv4, whichever answered first).
_CONNECTION = re.compile(r"((?:Verified|Trusted|Untrusted|Anonymous) TLS connection established to [^\s\[]+)")
#: Why it made none (a TLSA that names another key, an MX not proven, nothing reached): its last line that says so.
_PROBLEM = re.compile(r"posttls-finger: (.*(?:TLSA|DANE|MX RRset|insecure|not verified|failed|refused|timed out).*)")
SECTION = f"{GUIDE} section 13"
#: What to look at when Postfix on the server cannot verify its own domain by DANE: the resolver it asks.
OWN_RESOLVER_FIX = (
    f"{SECTION}: is Unbound running (systemctl status unbound), /etc/resolv.conf naming 127.0.0.1, and Postfix "
    "restarted since (it copies resolv.conf when it starts)?"
)


def finger_verdict(output: str) -> tuple[bool, str]:
    """Whether posttls-finger verified the server by DANE, and what it said."""
    seen = _CONNECTION.findall(output)
    if seen:
        return seen[-1].startswith("Verified"), seen[-1]
    problems = _PROBLEM.findall(output)
    if problems:
        return False, shorten(problems[-1])
    lines = output.strip().splitlines()
    return False, shorten(lines[-1]) if lines else "no output"


def receiver_fix(destination: str, said: str) -> str:
    """What to do when another domain's server is not verified by DANE, from what posttls-finger said of it.

    >>> receiver_fix("example.net", "Untrusted TLS connection established to mx.example.net")
    "example.net's TLSA records name another key than its server's: mail there waits in the queue"
    >>> receiver_fix("example.net", "connect to mx.example.net[198.51.100.9]:25: Connection timed out")
    'example.net not reached (connect to mx.example.net[198.51.100.9]:25: Connection timed out): is port 25 out \
open (section 8)? Mail there waits in the queue'
    """
    if "TLS connection established" in said or "certificate" in said or "TLSA" in said:
        return f"{destination}'s TLSA records name another key than its server's: mail there waits in the queue"
    return f"{destination} not reached ({said}): is port 25 out open (section 8)? Mail there waits in the queue"


def finger(mail: Connection, destination: str) -> tuple[bool, str]:
    """``posttls-finger -c -l dane DESTINATION`` on the server: DANE as its Postfix does it, for one destination."""
    said = mail.run(
        ["posttls-finger", "-c", "-l", "dane", "-t", "10", "-T", "20", destination], check=False, timeout=60
    )
    return finger_verdict(said.stdout + said.stderr)


def direct_receivers(receiver: Receiver | None, part3: Part3) -> list[str]:
    """The receiver's domain, to check by DANE from the server when the server sends there itself: through a relay
    (section 8) the relay checks it, and port 25 out may well be closed to the server."""
    if receiver is None or part3.smarthost is not None:
        return []
    return [receiver.address.split("@")[1]]


def verify(dane: Dane, mail: Connection, lookup: Lookup, nameserver: str, others: list[str]) -> list[CheckResult]:
    """The TLSA records as published, the server verifying itself by them through its own resolver, and each of
    ``others`` (domains whose servers publish TLSA: another provider's) verified the same way."""
    records = dane.records(dane.public_keys(mail))
    results = []
    for record in records:
        differs = plan([record], lookup, nameserver)
        seen = lookup(record.name, record.rtype)
        results.append(
            CheckResult(
                "dane",
                f"TLSA {record.name}: the key in use and the next",
                not differs and len(record.values) == 2,
                f"{len(seen)} record(s)" if seen else "no record",
                f"{SECTION}: publish the records the plan shows",
            )
        )
    domain = dane.part2.part1.domain
    for destination in [domain, *others]:
        ok, said = finger(mail, destination)
        fix = OWN_RESOLVER_FIX if destination == domain else receiver_fix(destination, said)
        results.append(CheckResult("dane", f"posttls-finger -l dane {destination}", ok, said, fix))
    return results
