"""Part 3 section 13, DANE: the server checks the receivers' keys in DNS, and publishes its own.

Two halves, one per direction:

- **Sending.** Postfix already asks for TLSA records (section 7 set ``smtp_tls_security_level = dane``), but it can
  trust only an answer DNSSEC proved, and the resolver that proves it must be on the server itself: an answer's
  "validated" flag from a resolver across the network could have been set by anyone on the way. So the server gets
  its own validating resolver, Unbound, and ``/etc/resolv.conf`` names it.
- **Receiving.** ``_25._tcp.<host>`` TLSA ``3 1 1`` records name the server's key: the key in use, and the next one,
  made on the server now and kept there (:mod:`mailkit.domain.tlsa`), so that changing keys never leaves senders
  with a key they cannot match.

Debian's Unbound needs no configuration on the internet: it listens on the server only, starts from the root
servers and trusts IANA's root key. In a DNS world of its own (the lab, a class room) it is told that world's root
server and root key (the target's ``dns_root`` and ``trust_anchor``).

>>> dane = Dane(Part2(Part1()))
>>> dane.next_key_path
'/etc/ssl/private/mail.example.org.next.key'
>>> [type(r).__name__ for r in dane.resolver()]
['Packages']
>>> print(dane.resolver_conf())
None
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailkit.core.facts import gather
from mailkit.core.resources import Directory, File, GeneratedKey, Packages, Resource
from mailkit.core.resources.keys import PublicKey
from mailkit.core.ssh import Connection
from mailkit.domain.records import RecordSet
from mailkit.domain.tlsa import records_for, tlsa_name
from mailkit.guide.part1 import Part1  # noqa: F401  (the doctest's)
from mailkit.guide.part2 import Part2

if TYPE_CHECKING:
    from mailkit.server.target import Target

#: Debian's Unbound file that makes IANA's root key the trust anchor (emptied in a DNS world with another root).
#: The server's validating resolver.
PACKAGES = ("unbound",)
DEBIAN_ANCHOR_FILE = "/etc/unbound/unbound.conf.d/root-auto-trust-anchor-file.conf"
#: mailkit's own Unbound settings (only in a DNS world of its own).
UNBOUND_CONF = "/etc/unbound/unbound.conf.d/mailkit.conf"
#: The server's resolver, for every program on it: Unbound on the loopback address. ``trust-ad``: glibc hands the
#: resolver's "validated" (AD) flag to programs only when told to trust it, as one on the server itself may be.
RESOLV_CONF = "# Written by mailkit (part 3 section 13): the server's own validating resolver, Unbound.\n" \
    "nameserver 127.0.0.1\noptions trust-ad\n"  # fmt: skip
#: Unbound keeps its answers at most this long in a DNS world of its own, whose records change within seconds
#: (a lab, a class room); on the internet it keeps them for their TTL.
PRIVATE_WORLD_CACHE = 10
#: How Unbound treats the one root server of a DNS world of its own, which goes silent for a moment whenever its records
#: change or it restarts. By default Unbound waits longer for a silent server after each unanswered question (up to
#: 120 s) and, once it counts the server down, asks it again only after a while, answering SERVFAIL to every question
#: meanwhile: the server's mail deferred ("Domain not found"), its DANE lookups failed. So it waits at most 2 s for an
#: answer (more than any answer inside one network takes), keeps asking a server it counted down, and forgets what it
#: learnt of a server after 5 s (bookworm's Unbound, 1.17, asks a server it counted down again only once that is
#: forgotten: 15 minutes by default). Measured in the lab, DNS to the root dropped for 60 s while the server asked:
#: names resolved again 38 s after the root answered again with Debian's settings on trixie, 0.4 s with these.
KEEP_ASKING_A_SILENT_ROOT = (
    "    # Its one root server goes silent for a moment when its records change: wait at most 2 s for an answer,",
    "    # keep asking it when it was silent, and forget in 5 s that it was, rather than giving up on it for minutes.",
    "    infra-cache-max-rtt: 2000",
    "    infra-keep-probing: yes",
    "    infra-host-ttl: 5",
)
#: Reverse zones of the documentation ranges, which Unbound answers itself by default (RFC 6303) and a DNS world of
#: its own may live in.
_DOCUMENTATION_REVERSE = (
    "2.0.192.in-addr.arpa.", "100.51.198.in-addr.arpa.", "113.0.203.in-addr.arpa.", "8.b.d.0.1.0.0.2.ip6.arpa.",
)  # fmt: skip


def resolver_conf(dns_root: str | None, trust_anchor: str | None) -> str | None:
    """mailkit's Unbound settings in a DNS world whose root server is ``dns_root`` and root key ``trust_anchor``;
    None on the internet (Debian's are right there)."""
    if dns_root is None:
        return None
    return "\n".join(
        [
            "# Written by mailkit: this server's DNS world has a root of its own (not the internet's).",
            "server:",
            "    # Trust starts from that root's key (Debian's file naming IANA's is emptied).",
            f'    trust-anchor: "{trust_anchor}"',
            f"    cache-max-ttl: {PRIVATE_WORLD_CACHE}",
            f"    cache-max-negative-ttl: {PRIVATE_WORLD_CACHE}",
            f"    val-bogus-ttl: {PRIVATE_WORLD_CACHE}",
            *KEEP_ASKING_A_SILENT_ROOT,
            "    # Its names live in the documentation ranges, which Unbound otherwise answers itself.",
            *(f'    local-zone: "{zone}" nodefault' for zone in _DOCUMENTATION_REVERSE),
            'stub-zone:\n    name: "."',
            f"    stub-addr: {dns_root}",
            "",
        ]
    )


def validating_resolver(dns_root: str | None = None, trust_anchor: str | None = None) -> list[Resource]:
    """Unbound, validating, for one host only; in a DNS world of its own (``dns_root``, ``trust_anchor``), told that
    world's root and key once installed (a restart), and never reaching out for IANA's key (Debian's helper would,
    at each start)."""
    conf = resolver_conf(dns_root, trust_anchor)
    if conf is None:
        return [Packages(PACKAGES)]
    # Before the package: its first start must find neither IANA's key missing (Debian's helper makes that file
    # from the internet) nor a key of the wrong world; systemd gives up on a unit that fails a few times.
    return [
        File("/etc/default/unbound", "ROOT_TRUST_ANCHOR_UPDATE=false\n"),
        Directory("/etc/unbound/unbound.conf.d", mode=0o755),
        File(DEBIAN_ANCHOR_FILE, f"# This DNS world's root key is in {UNBOUND_CONF}.\n"),
        Packages(PACKAGES),
        File(UNBOUND_CONF, conf, service="unbound"),
    ]


@dataclass(frozen=True)
class Dane:
    """Section 13 for part 2's server (its certificate's key is the key in use). ``dns_root`` and ``trust_anchor``:
    the root server and root key of a DNS world of its own (None: the internet's)."""

    part2: Part2
    dns_root: str | None = None
    trust_anchor: str | None = None

    @classmethod
    def for_target(cls, part2: Part2, target: Target) -> Dane:
        """Section 13 as the target's DNS world needs it."""
        return cls(part2, target.dns_root, target.trust_anchor)

    @property
    def hostname(self) -> str:
        return str(self.part2.part1.hostname)

    @property
    def next_key_path(self) -> str:
        """The next key, beside the one in use and as secret (root's, 0600)."""
        return f"/etc/ssl/private/{self.hostname}.next.key"

    # -- the server's own resolver ---------------------------------------------------------------
    def resolver_conf(self) -> str | None:
        """mailkit's Unbound settings: None on the internet (Debian's are right there)."""
        return resolver_conf(self.dns_root, self.trust_anchor)

    def resolver(self) -> list[Resource]:
        return validating_resolver(self.dns_root, self.trust_anchor)

    def use_resolver(self) -> list[Resource]:
        """Every program on the server asks Unbound (after :meth:`resolver` runs and answers). Postfix restarts:
        Debian's copies the file into the jail its smtp processes run in (bookworm's master.cf chroots them) only
        when it starts, and ``postfix check`` warns while the two differ."""
        return [File("/etc/resolv.conf", RESOLV_CONF, service="postfix", restart=True)]

    # -- the server's keys in DNS ------------------------------------------------------------------
    def next_key(self) -> list[Resource]:
        """The next key, made on the server when absent; its public half is published now, used later."""
        return [GeneratedKey(self.next_key_path, owner="root", group="root", mode=0o600)]

    def public_keys(self, conn: Connection) -> list[str]:
        """The public halves of the key in use and of the next one (base64 DER; absent ones left out)."""
        keys = gather(conn, [PublicKey(self.part2.key_file), PublicKey(self.next_key_path)])
        return [key for key in keys if key]

    def records(self, public_keys: list[str]) -> list[RecordSet]:
        """``_25._tcp.<host>`` TLSA: a ``3 1 1`` record per key, the one in use and the next."""
        return [RecordSet(tlsa_name(self.hostname), "TLSA", records_for(public_keys))]

    def everything(self) -> list[Resource]:
        return [*self.resolver(), *self.use_resolver(), *self.next_key()]
