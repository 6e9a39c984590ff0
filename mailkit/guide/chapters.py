"""The guide's chapters, listed once: the server parts (1-4, what ``mailkit check`` grades and a class works
through) and the chapters beside them (the upgrade), each with its title and notebook.

Everything that loops over parts (``mailkit check``'s report, services and ports, the board, the workshop, the CLI's
and the benches' defaults) reads them here.

>>> SERVER_PARTS, DEFAULT_PARTS
((1, 2, 3, 4), '1,2,3,4')
>>> chapter(5).title, chapter(5).server_part
('the upgrade', False)
>>> [(p.number, p.what) for p in chapter(4).ports]
[(4190, 'ManageSieve (STARTTLS)')]
"""

from __future__ import annotations

from dataclasses import dataclass


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


CHAPTERS = (
    Chapter(
        1,
        "Postfix",
        "01-postfix.ipynb",
        packages=("postfix",),
        ports=(Port(25, "SMTP (mail from other servers)", "smtp-starttls"),),
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
    ),
    Chapter(3, "your e-mails are spam", "03-spam-outbound.ipynb", packages=("rspamd",)),
    Chapter(
        4,
        "avoiding spam",
        "04-spam-inbound.ipynb",
        packages=("redis-server", "valkey-server"),
        ports=(Port(4190, "ManageSieve (STARTTLS)", "sieve-starttls"),),
    ),
    Chapter(5, "the upgrade", "05-upgrade.ipynb", server_part=False),
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
