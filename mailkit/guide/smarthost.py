"""When your provider blocks port 25: sending through a relay (a "smarthost"), part 3's section on it.

Many hosting providers block outgoing connections to port 25 on new accounts, so a server's mail never leaves.
The remedy is a relay service: Postfix hands every outgoing message to the relay on port 587, after STARTTLS with
the relay's certificate verified (against section 7's ``smtp_tls_CAfile``) and a login; the relay delivers it from
its own, well-kept address. DKIM signing stays on the server (receivers still see the domain's own signature, so
DMARC passes by DKIM), and the domain's SPF record names the relay's addresses with the ``include:`` the relay
service publishes.

The password is the relay service's; it goes to the server once, into a 0600 table readable by root only.

>>> relay = Smarthost(Hostname("relay.example.net"), "example-org", Password("s3cret with; $pace:s"))
>>> relay.destination
'[relay.example.net]:587'
>>> relay.settings()["smtp_sasl_password_maps"]
'lmdb:/etc/postfix/sasl_passwd'
>>> relay.password  # shown nowhere, as every password
Password('********')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mailkit.core.mail_layout import LAYOUT
from mailkit.core.resources import LookupTable, Postconf, Resource
from mailkit.core.values import Domain, Hostname, Password, ValueRejected
from mailkit.server.target import Target

#: The table of relay logins (``[host]:port user:password``): secret, 0600, root's.
SASL_PASSWORDS = "/etc/postfix/sasl_passwd"
#: The main.cf settings the relay needs; removing the relay removes them (Postfix's defaults return).
SETTINGS = (
    "relayhost",
    "smtp_sasl_auth_enable",
    "smtp_sasl_password_maps",
    "smtp_sasl_security_options",
    "smtp_sasl_tls_security_options",
    "smtp_tls_policy_maps",
)


@dataclass(frozen=True)
class Smarthost:
    """A relay service: its host name and submission port, your login there, and the SPF name it publishes."""

    host: Hostname
    user: str
    password: Password = field(repr=True)
    port: int = 587
    spf_include: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "host", Hostname(self.host, field="RELAYHOST"))
        if not (1 <= self.port <= 65535):
            raise ValueRejected("RELAY_PORT", self.port, "is not a port number")
        if not self.user or len(self.user) > 256 or any(c.isspace() or c in ":\0" for c in self.user):
            raise ValueRejected("RELAY_USER", self.user, "must be one word without ':' (the relay's login name)")
        secret = self.password.reveal()
        if secret != secret.strip():
            raise ValueRejected("RELAY_PASSWORD", "********", "begins or ends with a space (Postfix's table drops it)")
        if self.spf_include:
            object.__setattr__(self, "spf_include", str(Domain(self.spf_include, field="RELAY_SPF_INCLUDE")))

    @property
    def destination(self) -> str:
        """The relay as ``relayhost`` names it: in brackets, so Postfix asks for its address, not its MX."""
        return f"[{self.host}]:{self.port}"

    def settings(self) -> dict[str, str]:
        """main.cf for sending through the relay: every message to it, TLS verified (``secure``), a login."""
        return settings(self.destination)

    def resources(self) -> list[Resource]:
        """What the section applies: the login table (0600) and the settings."""
        line = f"{self.destination} {self.user}:{self.password.reveal()}\n"
        return [LookupTable(SASL_PASSWORDS, line, mode=0o600, secret=True), Postconf(self.settings())]


def settings(destination: str) -> dict[str, str]:
    """main.cf for sending through the relay at ``destination`` (``[host]:port``): the same for every relay."""
    return {
        "relayhost": destination,
        "smtp_sasl_auth_enable": "yes",
        "smtp_sasl_password_maps": LAYOUT.map_ref(SASL_PASSWORDS),
        # No anonymous logins, and none at all before TLS (the policy below makes TLS a must).
        "smtp_sasl_security_options": "noanonymous",
        "smtp_sasl_tls_security_options": "noanonymous",
        # To the relay, TLS with its certificate verified for its name: the password never travels in clear, and
        # never to an impostor. Other destinations keep part 3's outbound TLS.
        "smtp_tls_policy_maps": f"inline:{{ {destination}=secure }}",
    }


def destination_parts(destination: str) -> tuple[str, int]:
    """The host and port of a ``relayhost`` value (25 when it names none).

    >>> destination_parts("[relay.example.net]:587"), destination_parts("relay.example.net")
    (('relay.example.net', 587), ('relay.example.net', 25))
    """
    host, _, port = destination.rpartition(":") if destination.rpartition(":")[2].isdigit() else (destination, "", "25")
    return host.strip("[]"), int(port)


def removal() -> list[Resource]:
    """Back to direct delivery (the block lifted, or another way out): the relay's settings and table removed.

    >>> removal()[1].settings["relayhost"]
    ''
    """
    back: dict[str, str | None] = {name: None for name in SETTINGS}
    back["relayhost"] = ""  # as part 1 sets it: deliver directly, by MX
    return [LookupTable(SASL_PASSWORDS, "", mode=0o600, secret=True, present=False), Postconf(back)]


def from_parameters(
    target: Target,
    host: str | None,
    user: str | None,
    port: int = 587,
    spf_include: str | None = None,
    passwords: Mapping[str, str] | None = None,
) -> Smarthost | None:
    """The notebooks' ``RELAYHOST`` parameters as a relay, None when ``RELAYHOST`` is not set.

    The password is the target's for the name ``RELAYHOST``: a line ``RELAYHOST password`` in your passwords file.
    """
    if not host:
        return None
    if not user:
        raise ValueRejected("RELAY_USER", user, "is needed with RELAYHOST: your login at the relay")
    password = target.passwords([host], passwords)[host]
    return Smarthost(Hostname(host, field="RELAYHOST"), user, password, port, spf_include or "")
