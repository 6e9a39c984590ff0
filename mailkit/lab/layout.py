"""The lab's fixed layout: releases, hosts, addresses, names and paths.

Pure data, no side effects, so it can be read by the CLI, the tests and the notebooks alike.

>>> HOSTS["mail"].fqdn
'mail.example.org'
>>> HOSTS["mail"].address
'198.51.100.25'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: Debian releases the lab can boot, oldest first. trixie (stable) is the default.
RELEASES: tuple[str, ...] = ("bullseye", "bookworm", "trixie", "sid")
DEFAULT_RELEASE = "trixie"

#: Where every lab host gets its packages from (through the machine's caching proxy).
DEBIAN_MIRROR = "http://deb.debian.org/debian"

#: The lab network. Documentation ranges only (RFC 5737 / RFC 3849): nothing here is routable.
NETWORK_V4 = "198.51.100.0/24"
NETWORK_V6 = "2001:db8:100::/64"
GATEWAY_V4 = "198.51.100.1"  # the machine's own leg on the lab network (apt proxy, DNS updates)
GATEWAY_V6 = "2001:db8:100::1"
PROXY_PORT = 3142


def lab_instance(environ: dict[str, str] | None = None) -> int:
    """Which lab on this machine a process works on: 0 is the lab of the guide and the tests; ``mailkit matrix``
    runs labs 1 to 9 side by side, each in a network namespace of its own (``MAILKIT_LAB_INSTANCE``).

    >>> lab_instance({}), lab_instance({"MAILKIT_LAB_INSTANCE": "2"})
    (0, 2)
    """
    value = (os.environ if environ is None else environ).get("MAILKIT_LAB_INSTANCE", "0")
    if not (value.isdigit() and 0 <= int(value) <= 9):
        raise ValueError(f"MAILKIT_LAB_INSTANCE must be a number from 0 to 9, not {value!r}")
    return int(value)


#: This process's lab (read once: a process works on one lab).
INSTANCE = lab_instance()
#: Prefix of every kernel object the lab creates (namespaces, links, cgroups), so `down` can find them all.
#: Other instances differ in it ("mailkit2-mail"), so no two labs share a name.
PREFIX = "mailkit" if INSTANCE == 0 else f"mailkit{INSTANCE}"
SWITCH_NETNS = f"{PREFIX}-switch"
BRIDGE = "br0"
MACHINE_LINK = "mk-lab0" if INSTANCE == 0 else f"mk{INSTANCE}-lab0"  # the machine's end of its veth into the switch
#: Labs other than 0 do not start their own apt proxy: ``mailkit matrix`` relays theirs to one shared proxy.
EXTERNAL_PROXY = os.environ.get("MAILKIT_LAB_PROXY") == "external"


@dataclass(frozen=True)
class HostSpec:
    """One lab host: its role, name and fixed addresses."""

    name: str
    fqdn: str
    address: str
    address6: str
    mac: str
    layer: str | None  # extra packages layered over the base rootfs, or None for a plain server
    description: str
    #: More IPv4 addresses on the same link, each playing another sender on "the internet".
    extra_addresses: tuple[str, ...] = ()

    @property
    def netns(self) -> str:
        return f"{PREFIX}-{self.name}"

    @property
    def machine_name(self) -> str:
        return f"{PREFIX}-{self.name}"

    @property
    def switch_link(self) -> str:
        return f"mk-{self.name}"

    @property
    def domain(self) -> str:
        return self.fqdn.split(".", 1)[1]

    @property
    def mail_domains(self) -> tuple[str, str]:
        """The two domains a mail host's guide serves: its own and ``b.`` under it (as the lab's example.org and
        b.example.org).

        >>> HOSTS["mail"].mail_domains
        ('example.org', 'b.example.org')
        """
        return self.domain, f"b.{self.domain}"


HOSTS: dict[str, HostSpec] = {
    spec.name: spec
    for spec in (
        HostSpec(
            "dns",
            "ns.example.net",
            "198.51.100.53",
            "2001:db8:100::53",
            "02:00:c6:33:64:35",
            "dns",
            "BIND 9: authoritative for the lab zones, answers every lab host",
            ("198.51.100.54",),  # provider mode's resolver (Unbound), resolver.example.net
        ),
        HostSpec(
            "mail",
            "mail.example.org",
            "198.51.100.25",
            "2001:db8:100::25",
            "02:00:c6:33:64:19",
            None,
            "a fresh Debian server, as a hosting provider hands it over",
        ),
        HostSpec(
            "outside",
            "outside.example.net",
            "198.51.100.100",
            "2001:db8:100::100",
            "02:00:c6:33:64:64",
            "outside",
            "a host on 'the internet' with the clients the checks use",
            (
                "198.51.100.66",
                "198.51.100.67",
                "198.51.100.68",
                "198.51.100.69",
                "198.51.100.70",
                "198.51.100.71",
                "198.51.100.72",
            ),
        ),
    )
}

#: Workshop mode: up to this many students, each with a mail host of their own on the lab network.
MAX_STUDENTS = 60
_STUDENT_BASE = 110  # student N lives on 198.51.100.(110 + N): clear of every fixed lab address


def student_name(number: int) -> str:
    """``student01`` ... ``student60``.

    >>> student_name(3)
    'student03'
    """
    if not 1 <= number <= MAX_STUDENTS:
        raise ValueError(f"a student number is from 1 to {MAX_STUDENTS}, not {number}")
    return f"student{number:02}"


def student_spec(number: int) -> HostSpec:
    """Student ``number``'s mail host: its own domain ``studentNN.example.org`` and addresses, a fresh server.

    >>> spec = student_spec(1)
    >>> spec.fqdn, spec.address, spec.address6, spec.domain
    ('mail.student01.example.org', '198.51.100.111', '2001:db8:100::111', 'student01.example.org')
    """
    name = student_name(number)
    octet = _STUDENT_BASE + number
    return HostSpec(
        name,
        f"mail.{name}.example.org",
        f"198.51.100.{octet}",
        f"2001:db8:100::{octet}",
        f"02:00:c6:33:64:{octet:02x}",
        None,
        f"{name}'s mail host, a fresh Debian server",
    )


def host_spec(name: str) -> HostSpec | None:
    """A lab host by name: the three fixed ones, or a student's (``student07``); None if there is no such name.

    >>> host_spec("mail").fqdn, host_spec("student07").fqdn, host_spec("student99")
    ('mail.example.org', 'mail.student07.example.org', None)
    """
    if name in HOSTS:
        return HOSTS[name]
    if len(name) == 9 and name.startswith("student") and name[7:].isdigit() and 1 <= int(name[7:]) <= MAX_STUDENTS:
        return student_spec(int(name[7:]))
    return None


#: Senders part 4 refuses, played by the outside host's extra addresses: one is on the lab's block
#: list, the other is a spam bot that talks before the greeting (and so is never cached as "passed").
LISTED_ADDRESS = "198.51.100.66"
BOT_ADDRESS = "198.51.100.67"
#: Part 4's password guesser, and a user of the server logging in from elsewhere meanwhile.
GUESSER_ADDRESS = "198.51.100.69"
ROAMING_USER_ADDRESS = "198.51.100.70"
#: The relay provider's address (mailkit/lab/relay_provider.py), also on the outside host: relay.example.net.
RELAY_ADDRESS = "198.51.100.68"
#: The cloud provider a reader moves out of (mailkit/lab/cloud_provider.py), also on the outside host:
#: imap.cloud.example.net.
CLOUD_ADDRESS = "198.51.100.71"
#: The backup host the mail server sends its backups to (mailkit/lab/backup_host.py), also on the outside host:
#: backup.example.net.
BACKUP_ADDRESS = "198.51.100.72"
#: The lab's own DNS block list (RFC 5782 layout), answering like a real one does, offline.
BLOCKLIST_ZONE = "bl.example.net"

#: Zones the lab DNS serves; mailkit may add and replace records in them while the lab runs.
ZONES: tuple[str, ...] = ("example.org", "b.example.org", "example.net", BLOCKLIST_ZONE)
REVERSE_ZONE_V4 = "100.51.198.in-addr.arpa"
REVERSE_ZONE_V6 = "0.0.0.0.0.0.1.0.8.b.d.0.1.0.0.2.ip6.arpa"
TSIG_KEY_NAME = "mailkit-lab."

#: Packages every host gets (a minimal server image), and what each layer adds on top.
BASE_PACKAGES: tuple[str, ...] = (
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "ca-certificates",
    "iproute2",
    "procps",
    "netbase",
    "less",
)
LAYER_PACKAGES: dict[str, tuple[str, ...]] = {
    "dns": ("bind9", "bind9-dnsutils"),
    # The outside host is also another provider's mail server (mailkit/lab/receiver.py).
    "outside": (
        "swaks",
        "libnet-ssleay-perl",  # swaks --tls, as a reader types it by hand
        "libauthen-sasl-perl",  # swaks --auth
        "libnet-dns-perl",  # swaks without --server: delivery through the MX record
        "libio-socket-inet6-perl",  # swaks -6 on bookworm (trixie's swaks uses IO::Socket::IP)
        "curl",
        "openssl",
        "python3",
        "python3-dnspython",
        "bind9-dnsutils",
        "postfix",
        "opendkim",
        "opendmarc",
        "postfix-policyd-spf-python",
        "borgbackup",  # the backup host's borg serve (mailkit/lab/backup_host.py), as a storage box has it
        "dovecot-imapd",  # the cloud provider's IMAP server (mailkit/lab/cloud_provider.py), there from the start
    ),
}


def state_dir() -> Path:
    """Where the running lab keeps its state (hosts' writable layers, keys, known_hosts)."""
    default = "/var/lib/mailkit/lab" if INSTANCE == 0 else f"/var/lib/mailkit/lab{INSTANCE}"
    return Path(os.environ.get("MAILKIT_LAB_DIR", default))


def cache_dir() -> Path:
    """Where base root filesystems and the apt cache are kept between labs (safe to delete); root only."""
    path = Path(os.environ.get("MAILKIT_CACHE_DIR", "/var/cache/mailkit"))
    if path.is_dir() and path.stat().st_mode & 0o077 and os.geteuid() == path.stat().st_uid:
        path.chmod(0o700)
    return path
