"""The lab's independent receiver: another provider's mail server for ``example.net``, on the outside host.

It is configured the way a careful provider runs one, with software that shares nothing with the guide's
sender (rspamd): Postfix accepts mail for ``example.net`` over STARTTLS (its certificate from the lab CA,
which every lab host trusts as real hosts trust public CAs), ``postfix-policyd-spf-python`` checks SPF,
OpenDKIM verifies DKIM signatures, and OpenDMARC applies DMARC, rejecting failures under ``p=reject``.
Each stamps its verdict in ``Authentication-Results`` with the receiver's own authserv-id. A client
without forward-confirmed reverse DNS is refused (``reject_unknown_client_hostname``), as many providers do.

Messages land in a Maildir the checks read over SSH.

>>> RECEIVER.mailbox("dana@example.net")
'/var/mail/vhosts/example.net/dana'
"""

from __future__ import annotations

import base64
import email
import email.message
import email.policy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from mailkit.core import engine
from mailkit.core.resources import Directory, File, MasterService, Packages, Postconf, Resource, SystemAccount
from mailkit.core.ssh import Connection
from mailkit.core.values import EmailAddress
from mailkit.domain.records import lookup_at
from mailkit.domain.tlsa import tlsa_311, tlsa_name
from mailkit.lab.ca import CertificateAuthority
from mailkit.lab.layout import HOSTS

VMAIL_ID = 5000
OPENDKIM_CONF = """# OpenDKIM on the lab's receiver: verify only, verdicts in Authentication-Results.
Syslog                  yes
Mode                    v
Socket                  inet:8891@localhost
PidFile                 /run/opendkim/opendkim.pid
UserID                  opendkim
UMask                   007
AuthservID              {host}
AlwaysAddARHeader       yes
# The lab's root zone is not signed: ask the lab nameserver, without a DNSSEC trust anchor.
Nameservers             {nameserver}
"""
OPENDMARC_CONF = """# OpenDMARC on the lab's receiver: applies the sender's policy (rejects under p=reject).
PidFile                 /run/opendmarc/opendmarc.pid
Socket                  inet:8893@localhost
Syslog                  true
UserID                  opendmarc
UMask                   0002
AuthservID              {host}
TrustedAuthservIDs      {host}
RejectFailures          true
SPFSelfValidate         true
IgnoreAuthenticatedClients true
# Every verdict, for the aggregate reports (send_reports): imported into MariaDB, reported by opendmarc-reports.
HistoryFile             {history}
"""
POLICYD_SPF_CONF = """# postfix-policyd-spf-python on the lab's receiver: records SPF, leaves rejecting to DMARC.
debugLevel = 1
TestOnly = 1
HELO_reject = False
Mail_From_reject = False
PermError_reject = False
TempError_Defer = False
skip_addresses = 127.0.0.0/8,::ffff:127.0.0.0/104,::1
Header_Type = AR
Authserv_Id = {host}
"""


@dataclass(frozen=True)
class Receiver:
    """Where and as whom the receiver runs."""

    host: str = HOSTS["outside"].fqdn
    domain: str = "example.net"
    users: tuple[str, ...] = ("dana",)
    base: str = "/var/mail/vhosts"  # under the setgid /var/mail: mailkit sets the mode whole

    def mailbox(self, address: str) -> str:
        """The Maildir of ``address`` on the receiver."""
        local, domain = EmailAddress(address).split("@")
        return f"{self.base}/{domain}/{local}"

    def maildir_paths(self) -> list[str]:
        """The domain's directory, then each account's Maildir and its ``cur``, ``new`` and ``tmp``."""
        mailboxes = [self.mailbox(f"{user}@{self.domain}") for user in self.users]
        return [f"{self.base}/{self.domain}", *(f"{m}{sub}" for m in mailboxes for sub in ("", "/cur", "/new", "/tmp"))]

    def resources(self, chain: bytes, key: bytes) -> list[Resource]:
        cert, private = f"/etc/ssl/certs/{self.host}.pem", f"/etc/ssl/private/{self.host}.key"
        mailboxes = ", ".join(f"{u}@{self.domain}={self.domain}/{u}/" for u in self.users)
        filled = {"host": self.host, "nameserver": HOSTS["dns"].address, "history": HISTORY}
        milters = "inet:localhost:8891, inet:localhost:8893"
        return [
            Packages(("postfix", "opendkim", "opendmarc", "postfix-policyd-spf-python")),
            File(cert, chain, service="postfix", summary=f"certificate for {self.host}"),
            File(private, key, mode=0o600, secret=True, service="postfix"),
            File("/etc/opendkim.conf", OPENDKIM_CONF.format(**filled), service="opendkim"),
            File("/etc/opendmarc.conf", OPENDMARC_CONF.format(**filled), service="opendmarc"),
            File("/etc/postfix-policyd-spf-python/policyd-spf.conf", POLICYD_SPF_CONF.format(**filled)),
            SystemAccount("vmail", "vmail", VMAIL_ID, VMAIL_ID, self.base),
            Directory(self.base, owner="vmail", group="vmail", mode=0o750),
            # Each account's mailbox exists from the start, as a provider makes it with the account (Postfix would
            # make it with the first message; a reader may log in before).
            *(Directory(path, owner="vmail", group="vmail", mode=0o700) for path in self.maildir_paths()),
            MasterService(
                "policyd-spf",
                "unix",
                "spawn user=policyd-spf argv=/usr/bin/policyd-spf",
                private="-",  # in private/, where check_policy_service unix:private/... looks
                unpriv="n",
                chroot="n",
                maxproc="0",
            ),
            Postconf(
                {
                    "myhostname": self.host,
                    "mydomain": self.domain,
                    "myorigin": "$mydomain",
                    "mydestination": "localhost",
                    "inet_interfaces": "all",
                    "inet_protocols": "all",
                    "mynetworks": "127.0.0.0/8 [::1]/128",
                    "relayhost": "",
                    "virtual_mailbox_domains": self.domain,
                    "virtual_mailbox_base": self.base,
                    "virtual_mailbox_maps": f"inline:{{ {mailboxes} }}",
                    "virtual_uid_maps": f"static:{VMAIL_ID}",
                    "virtual_gid_maps": f"static:{VMAIL_ID}",
                    "smtpd_tls_cert_file": cert,
                    "smtpd_tls_key_file": private,
                    "smtpd_tls_security_level": "may",
                    "smtpd_tls_received_header": "yes",
                    "smtpd_helo_required": "yes",
                    "smtpd_client_restrictions": "permit_mynetworks, reject_unknown_client_hostname",
                    "smtpd_recipient_restrictions": (
                        "permit_mynetworks, reject_unauth_destination, check_policy_service unix:private/policyd-spf"
                    ),
                    "policyd-spf_time_limit": "3600",
                    "smtpd_milters": milters,
                    "non_smtpd_milters": "",
                    "milter_default_action": "tempfail",
                }
            ),
        ]


RECEIVER = Receiver()
#: OpenDMARC's record of each verdict (its own directory, where opendmarc-reports also writes its report files).
HISTORY_DIR = "/run/opendmarc"
HISTORY = f"{HISTORY_DIR}/opendmarc.dat"
#: What OpenDMARC's reporting needs: its Perl scripts' modules and the database they keep the verdicts in (Debian's
#: opendmarc reports from MySQL/MariaDB only). Installed when reports are first sent, not with the receiver.
REPORT_PACKAGES = (
    "mariadb-server", "libswitch-perl", "libdbi-perl", "libdbd-mysql-perl", "libjson-perl", "libhttp-message-perl",
)  # fmt: skip
#: The verdicts' database, from Debian's schema; the scripts log in as the ``opendmarc`` account (no password: the
#: database knows the account by its Unix user, on the local socket only).
REPORT_DATABASE = """set -eu
mariadb < /usr/share/dbconfig-common/data/opendmarc/install/mysql
mariadb -e "CREATE USER IF NOT EXISTS opendmarc@localhost IDENTIFIED VIA unix_socket;
            GRANT ALL ON opendmarc.* TO opendmarc@localhost;"
"""
#: The history so far moved aside (OpenDMARC writes the next verdict to a new file), imported, then a report sent
#: to each rua address for every domain seen, over the receiver's own Postfix, as a provider's daily run does. The
#: lab runs it when asked, not daily: every domain is made due (opendmarc-reports skips one reported in the last
#: day), and the verdicts reported are dropped after, so that the next report holds only what came since.
SEND_REPORTS = f"""set -eu
cd {HISTORY_DIR}
[ -s opendmarc.dat ] && mv opendmarc.dat opendmarc.importing
if [ -s opendmarc.importing ]; then
    runuser -u opendmarc -- opendmarc-import --dbpasswd=unix-socket < opendmarc.importing
    rm -f opendmarc.importing
fi
mariadb opendmarc -e "UPDATE requests SET lastsent = FROM_UNIXTIME(1)"
runuser -u opendmarc -- opendmarc-reports --dbpasswd=unix-socket --interval=86400 --verbose \\
    --report-email=dmarc-reports@{RECEIVER.domain} --report-org={RECEIVER.domain} --smtp-server=127.0.0.1
mariadb opendmarc -e "DELETE FROM messages"
"""


class LabKeys(Protocol):
    """What the receiver needs of the lab (:class:`mailkit.lab.lab.Lab`): its CA and its DNS update key."""

    @property
    def ca(self) -> CertificateAuthority: ...

    def tsig_secret(self) -> str: ...


def ensure(outside: Connection, lab: LabKeys) -> engine.ApplyResult:
    """Configure the receiver on the outside host (no change when it already is), and publish its key as TLSA, as a
    careful provider does (DANE: a sender that checks it sends only to this key, over TLS)."""
    from mailkit.lab import dns

    chain, key = lab.ca.certificate(RECEIVER.host)
    applied = engine.apply(outside, RECEIVER.resources(chain, key))
    wanted = [tlsa_311(public_key(key))]
    if list(lookup_at(dns.NAMESERVER.address)(tlsa_name(RECEIVER.host), "TLSA")) != wanted:
        dns.set_records(tlsa_name(RECEIVER.host), "TLSA", wanted, lab.tsig_secret())
    return applied


def public_key(key_pem: bytes) -> str:
    """The public half of a PEM private key, base64 DER (as :class:`~mailkit.core.resources.keys.PublicKey` reads
    one on a host)."""
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(key_pem, password=None)
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def messages(outside: Connection, address: str) -> list[bytes]:
    """Every message in ``address``'s Maildir on the receiver, oldest first."""
    folder = RECEIVER.mailbox(address)
    listing = outside.run(
        ["sh", "-c", 'find "$1/new" "$1/cur" -type f -printf "%T@ %p\\n" 2>/dev/null | sort -n', "sh", folder],
        check=False,
    ).stdout
    return [outside.read(line.split(" ", 1)[1]) for line in listing.splitlines() if " " in line]


def newest(
    outside: Connection, address: str, wanted: Callable[[email.message.Message], bool], *, seconds: float = 0
) -> tuple[bytes, email.message.Message] | None:
    """The newest message in ``address``'s Maildir that ``wanted`` accepts, waiting up to ``seconds`` for one."""
    deadline = time.monotonic() + seconds
    while True:
        for raw in reversed(messages(outside, address)):
            message = email.message_from_bytes(raw, policy=email.policy.compat32)
            if wanted(message):
                return raw, message
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.3)


def send_reports(outside: Connection) -> list[str]:
    """The receiver's DMARC aggregate reports, sent now for the verdicts recorded since the last ones (a provider
    sends them daily), with Debian's opendmarc-import and opendmarc-reports; what was sent, a line per report
    ("sent report for example.org to postmaster@example.org (...)")."""
    engine.apply(outside, [Packages(REPORT_PACKAGES)])
    outside.run(["sh", "-c", REPORT_DATABASE], timeout=120)
    said = outside.run(["sh", "-c", SEND_REPORTS], timeout=300)
    return [line.split(": ", 1)[1] for line in (said.stdout + said.stderr).splitlines() if ": sent report for " in line]
