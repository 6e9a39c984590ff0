"""A relay provider in the lab: what a reader whose hosting provider blocks port 25 buys (a "smarthost").

It is a second Postfix instance on the outside host (Postfix's own ``postmulti``), on an address and name of its
own (``relay.example.net``, 198.51.100.68, with forward-confirmed reverse DNS and an SPF record its customers
``include:``). It takes mail only on port 587, only after STARTTLS and a login (Cyrus SASL with a ``sasldb``, the
way small relay services run), and delivers it onward from its own address, as a commercial relay does. The lab's
independent receiver then judges the mail as it would judge any relay's: SPF against the relay's address, DKIM
as the mail server signed it.

>>> RELAY.destination
'[relay.example.net]:587'
>>> "smtpd_sasl_auth_enable=yes" in relay_script(RELAY, "example-org")
True
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from mailkit.core import engine
from mailkit.core.resources import File, Packages
from mailkit.core.ssh import Connection
from mailkit.core.values import Password
from mailkit.lab.ca import CertificateAuthority
from mailkit.lab.layout import RELAY_ADDRESS

INSTANCE = "postfix-relay"
CONFIG = f"/etc/{INSTANCE}"
#: The relay's customer account for the lab's mail domain, as a relay service would name it.
CUSTOMER = "example-org"


@dataclass(frozen=True)
class RelayProvider:
    """The relay's name, address and port."""

    host: str = "relay.example.net"
    address: str = RELAY_ADDRESS
    port: int = 587

    @property
    def destination(self) -> str:
        """The relay as Postfix's ``relayhost`` names it (brackets: no MX lookup)."""
        return f"[{self.host}]:{self.port}"

    @property
    def spf_include(self) -> str:
        """What a customer adds to their SPF record: ``include:`` this name."""
        return self.host


RELAY = RelayProvider()


def relay_script(relay: RelayProvider, customer: str) -> str:
    """The second Postfix instance, made once and configured on every run (the password comes on stdin)."""
    cfg = f"postconf -c {CONFIG}"
    settings = {
        "myhostname": relay.host,
        "mydestination": "",
        "relay_domains": "",
        "inet_interfaces": relay.address,
        "inet_protocols": "ipv4",
        "smtp_bind_address": relay.address,
        "mynetworks": "127.0.0.0/8",
        "smtpd_tls_cert_file": f"/etc/ssl/certs/{relay.host}.pem",
        "smtpd_tls_key_file": f"/etc/ssl/private/{relay.host}.key",
        "smtp_tls_security_level": "may",
        "cyrus_sasl_config_path": f"{CONFIG}/sasl",
        "smtpd_sasl_local_domain": relay.host,
        "master_service_disable": "",
    }
    submission = {
        "syslog_name": "postfix-relay/submission",
        "smtpd_tls_security_level": "encrypt",
        "smtpd_sasl_auth_enable": "yes",
        "smtpd_sasl_security_options": "noanonymous,noplaintext",
        "smtpd_sasl_tls_security_options": "noanonymous",
        "smtpd_client_restrictions": "permit_sasl_authenticated,reject",
        "smtpd_relay_restrictions": "permit_sasl_authenticated,reject",
    }
    lines = [
        "set -eu",
        f"[ -d {CONFIG} ] || {{ postmulti -e init; postmulti -I {INSTANCE} -e create; }}",
        f"postmulti -i {INSTANCE} -e enable",
        f"{cfg} -e " + " ".join(shlex.quote(f"{k}={v}") for k, v in settings.items()),
        f"{cfg} -MX smtp/inet 2>/dev/null || true",
        f"{cfg} -M submission/inet='submission inet n - n - - smtpd'",
        *[f"{cfg} -P " + shlex.quote(f"submission/inet/{k}={v}") for k, v in submission.items()],
        f"mkdir -p {CONFIG}/sasl",
        f"printf '%s\\n' 'pwcheck_method: auxprop' 'auxprop_plugin: sasldb' 'mech_list: PLAIN LOGIN' "
        f"'sasldb_path: {CONFIG}/sasldb2' > {CONFIG}/sasl/smtpd.conf",
        f"saslpasswd2 -p -c -f {CONFIG}/sasldb2 -u {shlex.quote(relay.host)} {shlex.quote(customer)}",
        f"chown root:postfix {CONFIG}/sasldb2 && chmod 0640 {CONFIG}/sasldb2",
        f"systemctl restart postfix@{INSTANCE.removeprefix('postfix-')}",  # the unit for /etc/postfix-relay
    ]
    return "\n".join(lines) + "\n"


def setup(outside: Connection, ca: CertificateAuthority, password: Password, relay: RelayProvider = RELAY) -> None:
    """Run the relay on the outside host, with ``password`` for the customer :data:`CUSTOMER`."""
    chain, key = ca.certificate(relay.host)
    engine.apply(
        outside,
        [
            Packages(("postfix", "libsasl2-modules", "sasl2-bin")),
            File(f"/etc/ssl/certs/{relay.host}.pem", chain, summary=f"certificate for {relay.host}"),
            File(f"/etc/ssl/private/{relay.host}.key", key, mode=0o600, secret=True),
        ],
    )
    outside.run(["sh", "-c", relay_script(relay, CUSTOMER)], input=password.reveal() + "\n", timeout=120)


def delivered_through(received: list[str], relay: RelayProvider = RELAY) -> bool:
    """Whether a message's ``Received:`` headers show the relay's hop.

    >>> delivered_through(["from relay.example.net (relay.example.net [198.51.100.68]) by outside.example.net"])
    True
    """
    return any(relay.host in line and relay.address in line for line in received)
