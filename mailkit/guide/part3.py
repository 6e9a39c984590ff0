"""Part 3 of the guide, "Your e-mails are spam": reverse DNS, HELO, SPF, DKIM with rspamd, DMARC, outbound TLS.

The signing key is made on the server and never leaves it; only its public half is read back and
published. DNS records are desired state like files (:mod:`mailkit.domain.records`).

>>> part3 = Part3(Part1())
>>> part3.key_path("example.org")
'/etc/rspamd/dkim/example.org.s202611.key'
>>> part3.dmarc_value("example.org")
'v=DMARC1; p=none; rua=mailto:postmaster@example.org'
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from mailkit.core.facts import gather
from mailkit.core.resources import Directory, File, GeneratedKey, Packages, Postconf, Resource
from mailkit.core.resources.keys import PublicKey
from mailkit.core.services import RSPAMD_MILTER_PORT
from mailkit.core.ssh import Connection
from mailkit.core.templates import Templates
from mailkit.core.values import ValueRejected
from mailkit.domain.records import RecordSet, txt
from mailkit.guide.part1 import Part1
from mailkit.guide.part2 import TLS_PROTOCOLS
from mailkit.guide.smarthost import Smarthost

GUIDE = "03-spam-outbound.ipynb"
#: The DKIM private keys: in a folder root owns (rspamd's group may read it, not change it), so the account
#: rspamd runs as cannot plant a link there for root to follow.
DKIM_DIR = "/etc/rspamd/dkim"
#: Where the guide kept them before December 2026 (a folder rspamd's own account could write): a key found
#: there is copied, not made again, so its published DNS record stays right.
OLD_DKIM_DIR = "/var/lib/rspamd/dkim"
RSPAMD_USER = "_rspamd"
#: Where rspamd listens for Postfix (Debian's worker-proxy.inc: milter mode).
RSPAMD_MILTER = f"inet:localhost:{RSPAMD_MILTER_PORT}"
#: rspamd modules that ask the internet (block lists, fuzzy hashes, URL and map downloads): off in the
#: lab, which has no internet; on a real server they stay on (part 4 explains them).
NETWORK_MODULES = ("rbl", "fuzzy_check", "asn", "url_redirector", "emails", "phishing")
DMARC_POLICIES = ("none", "quarantine", "reject")
#: The system's CAs in one file: read before Postfix's smtp client enters its chroot (a CApath directory is
#: read during the handshake, inside the chroot, where bookworm's chrooted smtp cannot see it).
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
_SELECTOR = re.compile(r"[a-z][a-z0-9-]{0,62}")


@dataclass(frozen=True)
class Part3:
    """Part 3's state, on part 1's domains. ``selector`` names the DKIM key (dated, so keys can rotate)."""

    part1: Part1
    selector: str = "s202611"
    dmarc_policy: str = "none"
    offline: bool = False
    #: A relay to send through, when the provider blocks outgoing port 25 (section 8); None: direct delivery.
    smarthost: Smarthost | None = None

    def __post_init__(self) -> None:
        if not _SELECTOR.fullmatch(self.selector):
            raise ValueRejected("SELECTOR", self.selector, "is not a DKIM selector (lower case letters, digits, '-')")
        if self.dmarc_policy not in DMARC_POLICIES:
            raise ValueRejected("DMARC_POLICY", self.dmarc_policy, f"is not one of {', '.join(DMARC_POLICIES)}")

    @property
    def domains(self) -> list[str]:
        return [self.part1.domain, *self.part1.other_domains]

    def key_path(self, domain: str) -> str:
        return f"{DKIM_DIR}/{domain}.{self.selector}.key"

    # -- what each section applies -------------------------------------------------------------
    def install(self) -> list[Resource]:
        return [Packages(("rspamd",))]

    def dkim_keys(self) -> list[Resource]:
        """One RSA-2048 key per domain, made on the server; root's, readable by rspamd's group only.

        rspamd reads a key when it first signs with it, so a new key needs no restart (restarting rspamd
        waits up to 16 s for Postfix's open milter sessions); the configuration that names it does.
        """
        folder = Directory(DKIM_DIR, owner="root", group=RSPAMD_USER, mode=0o750)
        keys = [
            GeneratedKey(
                self.key_path(d),
                owner="root",
                group=RSPAMD_USER,
                mode=0o640,
                adopt=f"{OLD_DKIM_DIR}/{d}.{self.selector}.key",
            )
            for d in self.domains
        ]
        return [folder, *keys]

    def rspamd_config(self) -> list[Resource]:
        """rspamd's local overrides: DKIM signing, and (offline) the network modules switched off."""
        signing = Templates().render("rspamd/dkim_signing.conf", {"dkim_dir": DKIM_DIR, "selector": self.selector})
        files: list[Resource] = [File("/etc/rspamd/local.d/dkim_signing.conf", signing, service="rspamd")]
        off = "# Switched off by mailkit: this host has no internet (the lab).\nenabled = false;\n"
        files += [
            File(f"/etc/rspamd/local.d/{name}.conf", off, service="rspamd", present=self.offline)
            for name in NETWORK_MODULES
        ]
        return files

    def milter(self) -> list[Resource]:
        return [
            Postconf(
                {
                    "smtpd_milters": RSPAMD_MILTER,
                    "non_smtpd_milters": "$smtpd_milters",
                    "milter_default_action": "accept",
                }
            )
        ]

    def outbound_tls(self) -> list[Resource]:
        """TLS whenever the receiver offers it, its certificate verified when it can be, and DANE's TLSA records
        obeyed where DNSSEC proves them (until section 13 gives the server a validating resolver, none are)."""
        return [
            Postconf(
                {
                    "smtp_tls_security_level": "dane",
                    "smtp_dns_support_level": "dnssec",
                    "smtp_tls_CAfile": CA_BUNDLE,
                    "smtp_tls_loglevel": "1",
                    "smtp_tls_protocols": TLS_PROTOCOLS,
                }
            )
        ]

    def relay(self) -> list[Resource]:
        """Section 8: every outgoing message through the relay (nothing when the server delivers directly)."""
        return self.smarthost.resources() if self.smarthost else []

    def everything(self) -> list[Resource]:
        return [
            *self.install(),
            *self.dkim_keys(),
            *self.rspamd_config(),
            *self.milter(),
            *self.outbound_tls(),
            *self.relay(),
        ]

    def spf_value(self) -> str:
        """The domains' SPF record: the MX hosts, and the relay's addresses when mail leaves through one.

        >>> Part3(Part1()).spf_value()
        'v=spf1 mx -all'
        """
        include = f" include:{self.smarthost.spf_include}" if self.smarthost and self.smarthost.spf_include else ""
        return f"v=spf1 mx{include} -all"

    # -- DNS -------------------------------------------------------------------------------------
    def public_keys(self, conn: Connection) -> dict[str, str]:
        """Each domain's DKIM public key, read from the server (the private key never leaves it)."""
        keys = gather(conn, [PublicKey(self.key_path(d)) for d in self.domains])
        return {domain: key for domain, key in zip(self.domains, keys, strict=True) if key}

    def dmarc_value(self, domain: str) -> str:
        return f"v=DMARC1; p={self.dmarc_policy}; rua=mailto:postmaster@{domain}"

    def records(self, public_keys: dict[str, str]) -> list[RecordSet]:
        """SPF, DKIM and DMARC records for every domain, and SPF for the HELO name.

        ``public_keys`` maps each domain to its DKIM public key (base64 DER, read from the server).
        """
        records = [RecordSet(self.part1.hostname, "TXT", (txt("v=spf1 a -all"),))]
        for domain in self.domains:
            records.append(RecordSet(domain, "TXT", (txt(self.spf_value()),)))
            records += self.dkim_records({d: k for d, k in public_keys.items() if d == domain})
            records.append(RecordSet(f"_dmarc.{domain}", "TXT", (txt(self.dmarc_value(domain)),)))
        return records

    def dkim_records(self, public_keys: dict[str, str]) -> list[RecordSet]:
        """The DKIM public key of each domain, at ``<selector>._domainkey.<domain>``."""
        return [
            RecordSet(f"{self.selector}._domainkey.{domain}", "TXT", (txt(f"v=DKIM1; k=rsa; p={key}"),))
            for domain, key in public_keys.items()
            if key
        ]

    def with_policy(self, policy: str) -> Part3:
        """The same part with another DMARC policy (section 10's ``p=reject``), its relay and key kept."""
        return dataclasses.replace(self, dmarc_policy=policy)

    # -- key rotation ------------------------------------------------------------------------------
    def rotated(self, selector: str) -> Part3:
        """The same part with a new key name: new keys are made for it and signing switches to it."""
        return dataclasses.replace(self, selector=selector)

    def retired_records(self) -> list[RecordSet]:
        """This selector's DKIM records, deleted (once no message signed with it needs verifying)."""
        return [RecordSet(f"{self.selector}._domainkey.{domain}", "TXT", ()) for domain in self.domains]

    def retire(self) -> list[Resource]:
        """This selector's private keys, removed from the server (a copy stays in the apply's backup)."""
        return [File(self.key_path(domain), present=False, secret=True) for domain in self.domains]
