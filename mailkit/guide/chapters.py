"""The guide's chapters, listed once: the server parts (1-4, what ``mailkit check`` grades and a class works
through) and the chapters beside them (the upgrade, moving in), each with its title and notebook.

Everything that loops over parts (``mailkit check``'s report, services and ports, the board, the workshop, the CLI's
and the benches' defaults) reads them here.

>>> SERVER_PARTS, DEFAULT_PARTS
((1, 2, 3, 4), '1,2,3,4')
>>> chapter(5).title, chapter(5).server_part
('the upgrade', False)
>>> [(p.number, p.what) for p in chapter(4).ports]
[(4190, 'ManageSieve (STARTTLS)')]
>>> [chapter(n).verify is not None for n in (1, 2, 3, 4, 5, 6)]
[True, True, True, True, False, False]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mailkit.core.checks import CheckResult
from mailkit.core.resources import Resource
from mailkit.core.ssh import Connection
from mailkit.guide import parts
from mailkit.guide.parts import Parts
from mailkit.server.target import Target

#: A part's checks (what its notebook ends with), and the resources whose drift ``mailkit check`` reports, given
#: the parts applied, a connection to read the host and the server's relayhost.
Verify = Callable[[Parts, Connection, Connection, Target], list[CheckResult]]
Drift = Callable[[Parts, Sequence[int], Connection, str], list[Resource]]


@dataclass(frozen=True)
class Port:
    """A port a part opens to the internet, what it serves, and how a client speaks on it (the probe's kind)."""

    number: int
    what: str
    kind: str


@dataclass(frozen=True)
class Chapter:
    """One notebook of the guide: its number (the ``NN-`` of its file name and ``--parts``), title and file."""

    number: int
    title: str
    notebook: str
    #: A part of the server's setup (checked by ``mailkit check``), or a chapter beside them (the upgrade).
    server_part: bool = True
    #: The packages whose service the part runs (either of Redis and Valkey: Debian has one or the other).
    packages: tuple[str, ...] = ()
    #: The ports it opens, in the order a check lists them.
    ports: tuple[Port, ...] = ()
    #: Its checks and its drift (:mod:`mailkit.guide.parts`); None for a chapter beside the parts.
    verify: Verify | None = None
    drift: Drift | None = None


CHAPTERS = (
    Chapter(
        1,
        "Postfix",
        "01-postfix.ipynb",
        packages=("postfix",),
        ports=(Port(25, "SMTP (mail from other servers)", "smtp-starttls"),),
        verify=parts.verify_part1,
        drift=parts.drift_part1,
    ),
    Chapter(
        2,
        "Dovecot",
        "02-dovecot.ipynb",
        packages=("dovecot-core",),
        ports=(
            Port(465, "submissions (TLS on connect)", "smtp-tls"),
            Port(587, "submission (STARTTLS)", "smtp-starttls"),
            Port(143, "IMAP (STARTTLS)", "imap-starttls"),
            Port(993, "IMAPS (TLS on connect)", "imap-tls"),
        ),
        verify=parts.verify_part2,
        drift=parts.drift_part2,
    ),
    Chapter(
        3,
        "your e-mails are spam",
        "03-spam-outbound.ipynb",
        packages=("rspamd", "nginx"),
        ports=(Port(443, "HTTPS (the MTA-STS policies)", "https-tls"),),
        verify=parts.verify_part3,
        drift=parts.drift_part3,
    ),
    Chapter(
        4,
        "avoiding spam",
        "04-spam-inbound.ipynb",
        packages=("redis-server", "valkey-server"),
        ports=(Port(4190, "ManageSieve (STARTTLS)", "sieve-starttls"),),
        verify=parts.verify_part4,
        drift=parts.drift_part4,
    ),
    Chapter(5, "the upgrade", "05-upgrade.ipynb", server_part=False),
    Chapter(6, "moving in", "06-moving-in.ipynb", server_part=False),
    Chapter(7, "backups", "07-backups.ipynb", server_part=False),
)
SERVER_PARTS = tuple(c.number for c in CHAPTERS if c.server_part)
#: Which part runs each service, by package; and each port a part opens: (what it serves, the probe's kind, part).
PART_OF_PACKAGE = {package: c.number for c in CHAPTERS for package in c.packages}
PORTS = {p.number: (p.what, p.kind, c.number) for c in CHAPTERS for p in c.ports}
#: What ``--parts`` means when it is not given: the server parts, in order.
DEFAULT_PARTS = ",".join(map(str, SERVER_PARTS))


def chapter(number: int) -> Chapter:
    """The chapter numbered ``number``; a KeyError for a number the guide has not."""
    for found in CHAPTERS:
        if found.number == number:
            return found
    raise KeyError(number)


def verify_parts(
    guide: Parts, numbers: Sequence[int], mail: Connection, outside: Connection, target: Target
) -> list[CheckResult]:
    """The checks of the given parts, in the guide's order, as each part's notebook ends with them."""
    results: list[CheckResult] = []
    for number in sorted(set(numbers)):
        check = chapter(number).verify
        if check is None:
            raise KeyError(f"chapter {number} is beside the server's parts: it has no checks of its own")
        results += check(guide, mail, outside, target)
    return results


def drift(guide: Parts, applied: Sequence[int], conn: Connection, relayhost: str = "") -> dict[int, list[Resource]]:
    """What the guide applies for the parts the server has, by part, for ``mailkit check`` to compare."""
    found: dict[int, list[Resource]] = {}
    for number in sorted(set(applied)):
        resources = chapter(number).drift
        if resources is not None:
            found[number] = resources(guide, applied, conn, relayhost)
    return found
