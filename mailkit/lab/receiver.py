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

import email
import email.message
import email.policy
import time
from collections.abc import Callable
from dataclasses import dataclass

from mailkit.core import engine
from mailkit.core.resources import Directory, File, MasterService, Packages, Postconf, Resource, SystemAccount
from mailkit.core.ssh import Connection
from mailkit.core.values import EmailAddress
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

    def resources(self, chain: bytes, key: bytes) -> list[Resource]:
        cert, private = f"/etc/ssl/certs/{self.host}.pem", f"/etc/ssl/private/{self.host}.key"
        mailboxes = ", ".join(f"{u}@{self.domain}={self.domain}/{u}/" for u in self.users)
        filled = {"host": self.host, "nameserver": HOSTS["dns"].address}
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


def ensure(outside: Connection) -> engine.ApplyResult:
    """Configure the receiver on the outside host (no change when it already is)."""
    from mailkit.lab.lab import Lab

    chain, key = Lab().ca.certificate(RECEIVER.host)
    return engine.apply(outside, RECEIVER.resources(chain, key))


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
