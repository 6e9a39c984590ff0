"""The guide's four parts for one server, and what each server part does with them, one shape for all: the checks
its notebook ends with (``verify``) and the resources whose drift ``mailkit check`` reports (``drift``). The
registry of chapters (:mod:`mailkit.guide.chapters`) names these for each part; its ``verify_parts`` and
``mailkit check`` loop over it.

>>> drift_part4.__doc__ is None or "postscreen" in drift_part4.__doc__
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailkit.core.checks import CheckResult
from mailkit.core.context import host_facts
from mailkit.core.resources import Postconf, Resource
from mailkit.core.ssh import Connection
from mailkit.guide import part3_checks, part4_checks, smarthost
from mailkit.guide.part1 import Part1
from mailkit.guide.part2 import Part2
from mailkit.guide.part3 import Part3
from mailkit.guide.part4 import Part4
from mailkit.server.target import Target


@dataclass(frozen=True)
class Parts:
    """Parts 1-4 as the notebooks' parameters (or a server's own settings) build them."""

    part1: Part1
    part2: Part2
    part3: Part3
    part4: Part4


def verify_part1(parts: Parts, mail: Connection, outside: Connection, target: Target) -> list[CheckResult]:
    return parts.part1.verify(mail, outside)


def verify_part2(parts: Parts, mail: Connection, outside: Connection, target: Target) -> list[CheckResult]:
    return parts.part2.verify(mail, outside)


def verify_part3(parts: Parts, mail: Connection, outside: Connection, target: Target) -> list[CheckResult]:
    return part3_checks.verify(parts.part3, parts.part2, mail, outside, target, parts.part3.public_keys(mail))


def verify_part4(parts: Parts, mail: Connection, outside: Connection, target: Target) -> list[CheckResult]:
    return part4_checks.verify(parts.part4, parts.part2, mail, outside, target)


def drift_part1(parts: Parts, applied: Sequence[int], conn: Connection, relayhost: str) -> list[Resource]:
    return parts.part1.everything()


def drift_part2(parts: Parts, applied: Sequence[int], conn: Connection, relayhost: str) -> list[Resource]:
    """Postfix's delivery, TLS and submission, and dovecot.conf (with part 4's Sieve folders once it is applied)."""
    part2 = parts.part2
    sieve = parts.part4.sieve_paths() if 4 in applied else None
    return [*part2.delivery(), *part2.tls(), *part2.submission(), *part2.dovecot(host_facts(conn), sieve)]


def drift_part3(parts: Parts, applied: Sequence[int], conn: Connection, relayhost: str) -> list[Resource]:
    """rspamd's signing files, the milter and outbound TLS; a relay's settings when the server has one (section 8:
    its secret table is left out)."""
    part3 = parts.part3
    relay = [Postconf(smarthost.settings(relayhost))] if relayhost else []
    return [*part3.rspamd_config(), *part3.milter(), *part3.outbound_tls(), *relay]


def drift_part4(parts: Parts, applied: Sequence[int], conn: Connection, relayhost: str) -> list[Resource]:
    return [*parts.part4.postscreen(), *parts.part4.restrictions()]
