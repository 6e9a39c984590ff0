"""Part 2 of the guide, Dovecot: IMAP, passwd-file users, LMTP delivery, SASL submission and TLS.

One set of templates serves Dovecot 2.3 (bookworm) and 2.4 (trixie): the host's facts choose.

>>> Part2(Part1()).cert_file
'/etc/ssl/certs/mail.example.org.pem'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mailkit.core.checks import CheckResult
from mailkit.core.context import HostFacts
from mailkit.core.display import SideBySide
from mailkit.core.resources import (
    CANDIDATE,
    AcmeCertificate,
    File,
    LookupTable,
    MasterService,
    Packages,
    Postconf,
    Resource,
)
from mailkit.core.resources.acme import acme_url, live_paths
from mailkit.core.ssh import Connection
from mailkit.core.templates import Templates
from mailkit.core.values import Password, RemotePath
from mailkit.guide import part2_checks
from mailkit.guide.part1 import Part1
from mailkit.server import certificates, mailboxes

GUIDE = "02-dovecot.ipynb"
DOVECOT_CONF = "/etc/dovecot/dovecot.conf"
#: Parallel LMTP deliveries from Postfix: below Dovecot 2.4's per-user limit of 10 (found by the load test).
LMTP_CONCURRENCY = 8
#: The two Dovecot generations the guide serves, as Debian ships them (for the side-by-side section).
RELEASE_FACTS = (
    HostFacts("bookworm", "3.7.11-0+deb12u1", "1:2.3.19.1+dfsg1-2.1+deb12u1"),
    HostFacts("trixie", "3.10.13-0+deb13u1", "1:2.4.1+dfsg1-6+deb13u7"),
)
#: Both releases' Postfix accept this (">=TLSv1.2" is 3.6+ syntax and disables TLS on bullseye's 3.5).
TLS_PROTOCOLS = "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"
#: Cipher suites the server never agrees to, whatever a client offers (the NCSC guidelines' "insufficient" ones):
#: no authentication (anonymous Diffie-Hellman), no encryption, export-grade, weak, RC4, DES and 3DES, MD5.
TLS_EXCLUDED_CIPHERS = "aNULL, eNULL, EXPORT, LOW, RC4, DES, 3DES, MD5"
SUBMISSION_OPTIONS = {
    "smtpd_sasl_auth_enable": "yes",
    "smtpd_client_restrictions": "permit_sasl_authenticated,reject",
    "smtpd_sender_restrictions": "reject_sender_login_mismatch",
    "smtpd_relay_restrictions": "permit_sasl_authenticated,reject",
}


@dataclass(frozen=True)
class Part2:
    """Part 2's state, built on part 1's parameters. Passwords are only used to make new hashes."""

    part1: Part1
    passwords: Mapping[str, Password] = field(default_factory=dict, repr=False)
    cert_file: str = ""
    key_file: str = ""
    #: The ACME CA certbot asks for the certificate (None: the certificate comes from elsewhere, CERT_FILE).
    acme_server: str | None = None
    acme_email: str | None = None

    def __post_init__(self) -> None:
        host = self.part1.hostname
        if self.acme_server is not None:
            acme_url(self.acme_server)
            cert, key = live_paths(host)
        else:
            cert, key = certificates.default_paths(host)
        object.__setattr__(self, "cert_file", RemotePath(self.cert_file or cert))
        object.__setattr__(self, "key_file", RemotePath(self.key_file or key))
        object.__setattr__(
            self, "passwords", {str(k): Password(v, field=f"PASSWORDS[{k}]") for k, v in self.passwords.items()}
        )

    # -- what each section applies -------------------------------------------------------------
    def install(self) -> list[Resource]:
        return [Packages(("dovecot-core", "dovecot-imapd", "dovecot-lmtpd"))]

    def certificate(self, chain: bytes, key: bytes) -> list[Resource]:
        """The server's certificate (public, with its chain) and private key (0600, never shown).

        Both belong to Postfix and Dovecot: a renewed certificate reloads them.
        """
        users = ("postfix", "dovecot")
        summary = f"certificate for {self.part1.hostname} and its chain"
        return [
            File(self.cert_file, chain, mode=0o644, summary=summary, service=users),
            File(self.key_file, key, mode=0o600, secret=True, service=users),
        ]

    def acme(self) -> list[Resource]:
        """certbot, and a certificate from the ACME CA (HTTP-01 on port 80): nothing when there is no ACME CA."""
        if self.acme_server is None:
            return []
        email = self.acme_email or f"postmaster@{self.part1.domain}"
        return [Packages(("certbot",)), AcmeCertificate(self.part1.hostname, self.acme_server, email)]

    def renewal_hook(self) -> list[Resource]:
        """certbot's deploy hook reloading Postfix and Dovecot, when the certificate is certbot's (else nothing)."""
        return certificates.renewal_hook(self.cert_file)

    def certificate_status(self, mail: Connection) -> str:
        """What the server's certificate and key files are, checked on the server; an error naming any problem."""
        return certificates.certificate_status(mail, self.cert_file, self.key_file, str(self.part1.hostname))

    def dovecot_config(self, facts: HostFacts, sieve: Mapping[str, str] | None = None) -> str:
        """dovecot.conf for this host's Dovecot; ``sieve`` (part 4's paths) adds Sieve and ManageSieve."""
        layout = self.part1.layout
        context = {
            "sieve": sieve,
            **facts.as_context(),
            "vmail_user": layout.vmail_user,
            "vmail_uid": layout.vmail_uid,
            "vmail_base": layout.vmail_base,
            "scheme": layout.scheme,
            "passwd_file": layout.passwd_file,
            "cert_file": self.cert_file,
            "key_file": self.key_file,
        }
        return Templates().render("dovecot/dovecot.conf", context)

    def dovecot(self, facts: HostFacts, sieve: Mapping[str, str] | None = None) -> list[Resource]:
        check = ("doveconf", "-n", "-c", CANDIDATE)  # the candidate, before it replaces the live file
        content = self.dovecot_config(facts, sieve)
        # A new service (ManageSieve's listener) needs a restart: a reload leaves 2.4 without its socket directory.
        return [File(DOVECOT_CONF, content, service="dovecot", check=check, restart=sieve is not None)]

    def users(self) -> list[Resource]:
        """The passwd-file: existing hashes kept, new mailboxes hashed on the server (at apply time)."""
        return [mailboxes.passwd_file(self.part1.mailboxes, self.passwords, self.part1.layout)]

    def delivery(self) -> list[Resource]:
        # Dovecot 2.4 takes at most 10 deliveries to one user at a time (lmtp_user_concurrency_limit) and
        # answers the 11th "451 try later": Postfix then waits minutes. Postfix sends no more than that at once.
        return [
            Postconf(
                {
                    "virtual_transport": "lmtp:unix:private/dovecot-lmtp",
                    "lmtp_destination_concurrency_limit": str(LMTP_CONCURRENCY),
                }
            )
        ]

    def tls(self) -> list[Resource]:
        return [
            Postconf(
                {
                    "smtpd_tls_cert_file": self.cert_file,
                    "smtpd_tls_key_file": self.key_file,
                    "smtpd_tls_security_level": "may",
                    "smtpd_tls_auth_only": "yes",
                    "smtpd_tls_protocols": TLS_PROTOCOLS,
                    "smtpd_tls_mandatory_protocols": TLS_PROTOCOLS,
                    "smtpd_tls_exclude_ciphers": TLS_EXCLUDED_CIPHERS,
                }
            )
        ]

    def sender_map(self) -> str:
        owners = mailboxes.sender_logins(self.part1.mailboxes, self.part1.aliases)
        return mailboxes.sender_map_content(owners, self.part1.layout)

    def submission(self) -> list[Resource]:
        layout = self.part1.layout
        return [
            LookupTable(layout.sender_map, self.sender_map(), layout.map_type),
            Postconf(
                {
                    "smtpd_sasl_type": "dovecot",
                    "smtpd_sasl_path": "private/auth",
                    "smtpd_sasl_auth_enable": "no",
                    "smtpd_sender_login_maps": layout.map_ref(layout.sender_map),
                }
            ),
            MasterService(
                "submission",
                "inet",
                "smtpd",
                chroot="y",
                options={
                    "syslog_name": "postfix/submission",
                    "smtpd_tls_security_level": "encrypt",
                    **SUBMISSION_OPTIONS,
                },
            ),
            MasterService(
                "submissions",
                "inet",
                "smtpd",
                chroot="y",
                options={"syslog_name": "postfix/submissions", "smtpd_tls_wrappermode": "yes", **SUBMISSION_OPTIONS},
            ),
        ]

    def everything(self, facts: HostFacts, chain: bytes | None, key: bytes | None) -> list[Resource]:
        certificate = self.certificate(chain, key) if chain is not None and key is not None else self.acme()
        return [
            *self.install(),
            *certificate,
            *self.renewal_hook(),
            *self.dovecot(facts),
            *self.users(),
            *self.delivery(),
            *self.tls(),
            *self.submission(),
        ]

    def settings(self) -> set[str]:
        """Every Postfix setting part 2 writes, in main.cf and as master.cf -o options."""
        names = set()
        for r in [*self.delivery(), *self.tls(), *self.submission()]:
            if isinstance(r, Postconf):
                names |= set(r.settings)
            elif isinstance(r, MasterService):
                names |= set(r.options)
        return names

    def configs_side_by_side(self) -> SideBySide:
        """dovecot.conf as rendered for Dovecot 2.3 (bookworm) and 2.4 (trixie), to compare."""
        (old, new) = RELEASE_FACTS
        return SideBySide(
            f"Dovecot {old.dovecot_major} ({old.release})",
            self.dovecot_config(old),
            f"Dovecot {new.dovecot_major} ({new.release})",
            self.dovecot_config(new),
        )

    # -- checks -----------------------------------------------------------------------------------
    def verify(self, mail: Connection, outside: Connection, subject_from_part1: str | None = None) -> list[CheckResult]:
        return part2_checks.verify(self.part1, self.passwords, mail, outside, subject_from_part1)
