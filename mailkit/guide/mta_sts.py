"""Part 3 section 14, MTA-STS (RFC 8461) hosted on the server, and TLS-RPT (RFC 8460): TLS for senders without DANE.

A sender whose resolver does not validate, or that does not do DANE, learns from MTA-STS that a domain's mail goes
over TLS only, to a host with a certificate for one of the names the policy lists. The policy is a small text file
at ``https://mta-sts.<domain>/.well-known/mta-sts.txt``; the TXT record ``_mta-sts.<domain>`` says there is one and
gives its id, and senders fetch the file again only when the id changes. TLS-RPT (``_smtp._tls.<domain>``) asks
senders for a daily report of the TLS sessions they had with the server, failures included.

What serves the file is nginx: one package, one configuration file written whole (``nginx -t`` checks it before it
goes live), listening on 443 only, so port 80 stays free for certbot's own challenge server. Each ``mta-sts`` name
is a CNAME of the mail host and has a certificate of its own, from the same ACME CA as the mail host's (or, in the
lab, from the lab's CA); a request for any other name gets the mail host's own certificate and a 404.

The id is the policy's digest, read back over HTTPS as a sender reads it (:meth:`MtaSts.records` takes the policy as
served): a record can never announce a policy the server does not serve, and a changed policy is published in the
safe order, the file first, then the id.

>>> sts = MtaSts(Part2(Part1()))
>>> print(sts.policy_text(), end="")
version: STSv1
mode: testing
mx: mail.example.org
max_age: 604800
>>> policy_id(sts.policy_text())
'c0581b88c9caadd31f93'
>>> sts.web_names
('mta-sts.example.org', 'mta-sts.b.example.org')
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailkit.core.errors import MailkitError
from mailkit.core.resources import CANDIDATE, AcmeCertificate, Directory, File, Packages, Resource
from mailkit.core.resources.acme import live_paths
from mailkit.core.templates import Templates
from mailkit.domain import mtasts
from mailkit.domain.records import RecordSet, txt
from mailkit.guide.part1 import Part1  # noqa: F401  (the doctest's)
from mailkit.guide.part2 import Part2
from mailkit.server import certificates

if TYPE_CHECKING:
    from mailkit.server.target import Target

GUIDE = "03-spam-outbound.ipynb"
SECTION = f"{GUIDE} section 14"
#: nginx's whole configuration, written by mailkit: it serves the policies and nothing else.
NGINX_CONF = "/etc/nginx/nginx.conf"
#: Where each domain's policy lives on the server: ``<domain>.txt``.
POLICY_DIR = "/var/www/mta-sts"
#: certbot's deploy hook for the policies' certificates (part 2's reloads the mail services).
WEB_RENEWAL_HOOK = "/etc/letsencrypt/renewal-hooks/deploy/mailkit-reload-web"
MODES = ("testing", "enforce", "none")
SOURCES = ("acme", "issued", "server")
#: What section 14 installs.
PACKAGES = ("nginx",)
#: A week: senders keep a policy this long (RFC 8461 suggests weeks once it works).
MAX_AGE = 604800


def policy_id(text: str) -> str:
    """The ``id=`` of a policy: 20 letters and digits of its SHA-256 (RFC 8461 allows 1 to 32)."""
    return hashlib.sha256(text.encode()).hexdigest()[:20]


#: Fetches ``domain``'s policy as a sender does (HTTPS, the certificate verified for its ``mta-sts`` name).
Fetch = Callable[[str], str]


@dataclass(frozen=True)
class MtaSts:
    """Section 14 for part 2's server and domains. ``mode``: ``testing`` (senders report but deliver anyway) until
    the reports show no failure, then ``enforce``."""

    part2: Part2
    mode: str = "testing"
    max_age: int = MAX_AGE
    #: Where the ``mta-sts`` names' certificates come from: "acme" (certbot, from part 2's CA), "issued" (made off
    #: the server and uploaded: the lab's CA), or "server": already on it, at Debian's places (a server handed over
    #: with its certificates, or ones you bought and put there); ``nginx -t`` refuses to go live without them.
    source: str = "issued"

    @classmethod
    def for_target(cls, part2: Part2, target: Target, mode: str = "testing") -> MtaSts:
        """Section 14 with certificates as the server gets them: certbot's when part 2 uses ACME, else the target's
        (the lab's CA), else the ones on the server."""
        source = "acme" if part2.acme_server else "issued" if target.issues_certificates else "server"
        return cls(part2, mode, source=source)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise MailkitError(f"certificates from {self.source!r}: one of {', '.join(SOURCES)}")
        if self.mode not in MODES:
            raise MailkitError(f"MTA-STS mode {self.mode!r}: one of {', '.join(MODES)}")
        if not 86400 <= self.max_age <= mtasts.MAX_AGE_LIMIT:
            raise MailkitError(f"MTA-STS max_age {self.max_age}: from a day (86400) to a year ({mtasts.MAX_AGE_LIMIT})")

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(str(d) for d in self.part2.part1.domains)

    @property
    def hostname(self) -> str:
        return str(self.part2.part1.hostname)

    @property
    def web_names(self) -> tuple[str, ...]:
        return tuple(f"mta-sts.{d}" for d in self.domains)

    def enforcing(self) -> MtaSts:
        """The same policy in ``enforce`` mode: the change the reports allow, in the same safe order."""
        return dataclasses.replace(self, mode="enforce")

    def policy_text(self) -> str:
        """The policy every domain serves: its mail goes to this server (RFC 8461 section 3.2, CRLF or LF)."""
        return f"version: STSv1\nmode: {self.mode}\nmx: {self.hostname}\nmax_age: {self.max_age}\n"

    # -- on the server ------------------------------------------------------------------------------------
    def names_first(self) -> list[RecordSet]:
        """Each ``mta-sts`` name a CNAME of the mail host: published before the certificates (the CA checks it)."""
        return [RecordSet(name, "CNAME", (f"{self.hostname}.",)) for name in self.web_names]

    def certificate_paths(self, name: str) -> tuple[str, str]:
        return live_paths(name) if self.source == "acme" else certificates.default_paths(name)

    def certificates(
        self, issued: Mapping[str, tuple[bytes | None, bytes | None]] | None = None, *, served: bool = True
    ) -> list[Resource]:
        """A certificate per ``mta-sts`` name: certbot's from part 2's ACME CA, or the ones ``issued`` off the
        server (the lab's CA); nothing for certificates already on the server. ``served``: nginx serves them (a
        change reloads it); not yet, before its configuration names them."""
        if self.source == "server":
            return []
        if self.source == "acme" and self.part2.acme_server is not None:
            email = self.part2.acme_email or f"postmaster@{self.part2.part1.domain}"
            hook = "#!/bin/sh\n# Written by mailkit (guide part 3, section 14): nginx reads the renewed certificates.\n"
            hook += "systemctl reload nginx\n"
            return [
                *(AcmeCertificate(name, self.part2.acme_server, email) for name in self.web_names),
                File(WEB_RENEWAL_HOOK, hook.encode(), mode=0o755),
            ]
        given = {name: pair for name, pair in (issued or {}).items() if pair[0] and pair[1]}
        missing = [name for name in self.web_names if name not in given]
        if missing:
            raise MailkitError(
                f"no certificate for {', '.join(missing)}: the policy is served over HTTPS only. Set ACME_SERVER "
                f"(part 2) so certbot gets one, or have one issued for each name"
            )
        service = "nginx" if served else None
        resources: list[Resource] = []
        for name in self.web_names:
            chain, key = given[name]
            assert chain is not None and key is not None
            cert_path, key_path = certificates.default_paths(name)
            summary = f"certificate for {name} and its chain"
            resources += [
                File(cert_path, chain, mode=0o644, summary=summary, service=service),
                File(key_path, key, mode=0o600, secret=True, service=service),
            ]
        return resources

    def install(self, issued: Mapping[str, tuple[bytes | None, bytes | None]] | None = None) -> list[Resource]:
        """The certificates and nginx, in an apply before the configuration that names them (``nginx -t`` checks it
        with every file it names live): certbot's before nginx exists (its challenge server needs port 80, which
        Debian's nginx takes until its configuration is replaced), uploaded ones beside it."""
        if self.source == "acme":
            return [*self.certificates(), Packages(PACKAGES)]
        return [Packages(PACKAGES), *self.certificates(issued, served=False)]

    def nginx_config(self) -> str:
        sites = [
            {
                "name": name,
                "domain": domain,
                "cert": self.certificate_paths(name)[0],
                "key": self.certificate_paths(name)[1],
            }
            for name, domain in zip(self.web_names, self.domains, strict=True)
        ]
        context = {
            "sites": sites,
            "policy_dir": POLICY_DIR,
            "cert_file": self.part2.cert_file,
            "key_file": self.part2.key_file,
            "policy_path": mtasts.POLICY_PATH,
        }
        return Templates().render("nginx/nginx.conf", context)

    def web_server(self, issued: Mapping[str, tuple[bytes | None, bytes | None]] | None = None) -> list[Resource]:
        """Each domain's policy file, and nginx's configuration serving them (checked by ``nginx -t`` before it goes
        live), once :meth:`install` has run: what a policy change applies again. ``issued`` certificates come with
        it, served now: a new one reloads nginx."""
        policy = self.policy_text()
        uploaded = self.certificates(issued) if issued and self.source == "issued" else []
        return [
            *uploaded,
            Directory(POLICY_DIR, mode=0o755),
            *(File(f"{POLICY_DIR}/{domain}.txt", policy) for domain in self.domains),
            File(NGINX_CONF, self.nginx_config(), service="nginx", check=("nginx", "-t", "-q", "-c", CANDIDATE)),
        ]

    # -- in DNS -------------------------------------------------------------------------------------------
    def served(self, fetch: Fetch) -> dict[str, str]:
        """Each domain's policy as a sender fetches it; an error naming the first domain whose policy is not the
        one the server should serve (nothing is published then)."""
        served: dict[str, str] = {}
        for domain in self.domains:
            text = fetch(domain)
            if text.replace("\r\n", "\n") != self.policy_text():
                shown = text[:200].replace("\n", " | ")
                raise MailkitError(f"https://mta-sts.{domain}{mtasts.POLICY_PATH} serves another policy: {shown}")
            served[domain] = text
        return served

    def records(self, served: Mapping[str, str]) -> list[RecordSet]:
        """``_mta-sts.<domain>`` with the id of the policy as served, and ``_smtp._tls.<domain>`` asking for TLS
        reports at the postmaster's address (where DMARC's reports go too, section 5)."""
        records: list[RecordSet] = []
        for domain in self.domains:
            if domain not in served:
                raise MailkitError(f"the policy of {domain} was not read back: its id cannot be published")
            records.append(RecordSet(f"_mta-sts.{domain}", "TXT", (txt(f"v=STSv1; id={policy_id(served[domain])}"),)))
            records.append(RecordSet(f"_smtp._tls.{domain}", "TXT", (txt(tls_rpt_value(domain)),)))
        return records


def tls_rpt_value(domain: str) -> str:
    """The TLS-RPT record's value: reports by mail to the domain's postmaster.

    >>> tls_rpt_value("example.org")
    'v=TLSRPTv1; rua=mailto:postmaster@example.org'
    """
    return f"v=TLSRPTv1; rua=mailto:postmaster@{domain}"


def fetcher(lookup: Callable[[str, str], Sequence[str]], ca_file: str | None) -> Fetch:
    """Fetch a domain's policy from the address its ``mta-sts`` name has (as :mod:`mailkit.domain.mtasts` does for
    ``mailkit check``), the certificate verified against ``ca_file`` (None: the system's CAs)."""

    def fetch(domain: str) -> str:
        addresses = mtasts.policy_host_addresses(lookup, domain)
        if not addresses:
            raise MailkitError(f"mta-sts.{domain} has no address yet: publish its CNAME first")
        return mtasts.fetch_policy(domain, addresses[0], cafile=ca_file)

    return fetch
