"""Provider mode: the lab plays the internet a rented server lives in, so the own-server path is proven here.

``mailkit lab up --provider`` adds, on top of the lab:

- the mail host as a hosting provider hands it over: an ``admin`` user with passwordless ``sudo`` and the key you
  uploaded, reached through an alias (``mail-vps``) in an ordinary SSH config whose known_hosts you accepted once;
  its resolver is the provider's (below);
- a caching recursive resolver, Unbound, on the DNS host's second address (``resolver.example.net``,
  198.51.100.54), as every network has: it keeps answers (at most :data:`CACHE_MAX_TTL` seconds here, a record's
  TTL on the internet), so a record you publish shows only after a wait;
- a registrar: zone text on the standard input of ``mailkit lab registrar`` is published (the DNS provider's web
  form, played by a TSIG update); nothing else in the own-server path knows the lab's DNS key;
- an ACME CA: Debian's ``pebble`` on the outside host (``acme.example.net``), which checks HTTP-01 challenges on
  port 80 through the resolver, as Let's Encrypt does; its root is trusted on the lab's hosts and on this machine
  as Let's Encrypt's is everywhere;
- the reader's old account at a cloud provider (``alice@cloud.example.net`` at ``imap.cloud.example.net``, its app
  password in ``provider/passwords``) for the moving-in chapter, where ``dana@example.net`` also reads her mail
  (the address ``mailkit check --send-to`` sends to and reads back, its password there too), and a backup host
  (``backup.example.net``, account ``borg``, its host key in the params as a storage box's page shows it) for the
  backups chapter, whose key page is played by ``backup-admin`` in the SSH config: ``MAILKIT_BACKUP_AUTHORIZE``
  hands it the chapter's line.

``provider/env`` holds the settings a shell needs (``. /var/lib/mailkit/lab/provider/env``), ``provider/params.json``
and ``provider/passwords`` what a reader writes for their own server.

>>> unbound_conf(". IN DS 1 13 2 AB").splitlines()[2]
'    interface: 198.51.100.54'
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from mailkit.core import engine
from mailkit.core.errors import LabError
from mailkit.core.local import run_local, write_private
from mailkit.core.progress import Progress
from mailkit.core.resources import Directory, File, Packages
from mailkit.core.ssh import Connection
from mailkit.core.values import Password
from mailkit.domain.records import RecordSet
from mailkit.domain.registrar import TsigKey, parse_zone_text, publish_rfc2136
from mailkit.guide import dane
from mailkit.lab import backup_host, cloud_account, cloud_provider, receiver
from mailkit.lab.ca import CertificateAuthority
from mailkit.lab.dns import NAMESERVER
from mailkit.lab.layout import BACKUP_ADDRESS, HOSTS, REVERSE_ZONE_V4, TSIG_KEY_NAME
from mailkit.lab.machine import HostPaths


class Lab(Protocol):
    """What provider mode needs of the lab (:class:`mailkit.lab.lab.Lab`), without importing it."""

    dir: Path

    @property
    def client_key(self) -> Path: ...
    @property
    def ca(self) -> CertificateAuthority: ...

    def tsig_secret(self) -> str: ...
    def root_anchor(self) -> str: ...
    def host_key(self, name: str) -> Path: ...
    def host_paths(self, name: str) -> HostPaths: ...
    def connection(self, name: str) -> Connection: ...
    def passwords(self, mailboxes: Sequence[str]) -> dict[str, Password]: ...


RESOLVER = HOSTS["dns"].extra_addresses[0]
ADMIN = "admin"
ALIAS = "mail-vps"
PROBE_ALIAS = "probe"
#: Your login at the backup host with the right to add keys for its ``borg`` account (a storage box's key page).
BACKUP_ADMIN_ALIAS = "backup-admin"
#: The account you move out of (the moving-in chapter), at the lab's cloud provider.
OLD_USER = f"alice@{cloud_account.DOMAIN}"
#: An address of yours at another provider, read there over IMAP (``mailkit check --send-to``): the lab receiver's
#: ``dana@example.net``, whose mail the cloud provider serves.
READER = "dana@example.net"
ACME_HOST = "acme.example.net"
ACME_DIRECTORY = f"https://{ACME_HOST}:14000/dir"
#: How long the lab's resolver keeps an answer (a real one keeps it for the record's TTL: 300 s for the guide's).
CACHE_MAX_TTL = 10


def unbound_conf(anchor: str) -> str:
    """Unbound as the provider's resolver: recursion from the lab's own root (the lab has no other internet),
    validating from the lab's root key (``anchor``) as a real one validates from IANA's."""
    return "\n".join(
        [
            "# Written by mailkit: the hosting provider's resolver in the lab.",
            "server:",
            f"    interface: {RESOLVER}",
            "    access-control: 198.51.100.0/24 allow",
            "    access-control: 127.0.0.0/8 allow",
            "    do-ip6: no",
            "    # DNSSEC: the lab's root key is where trust starts (Debian's file naming IANA's is emptied).",
            '    module-config: "validator iterator"',
            f'    trust-anchor: "{anchor}"',
            f"    cache-max-ttl: {CACHE_MAX_TTL}",
            f"    cache-max-negative-ttl: {CACHE_MAX_TTL}",
            *dane.KEEP_ASKING_A_SILENT_ROOT,
            "    qname-minimisation: no",
            "    # Unbound answers the documentation ranges' reverse zones itself (NXDOMAIN): the lab lives in them.",
            f'    local-zone: "{REVERSE_ZONE_V4}." nodefault',
            '    local-zone: "8.b.d.0.1.0.0.2.ip6.arpa." nodefault',
            'stub-zone:\n    name: "."',
            f"    stub-addr: {NAMESERVER.address}",
            "",
        ]
    )


PEBBLE_UNIT = """[Unit]
Description=pebble: the lab's ACME CA, playing Let's Encrypt (written by mailkit)
After=network-online.target

[Service]
Environment=PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0
ExecStart=/usr/bin/pebble -config /etc/pebble/pebble-config.json -dnsserver {resolver}:53
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""


def pebble_config() -> str:
    config = {
        "pebble": {
            "listenAddress": "0.0.0.0:14000",
            "managementListenAddress": "0.0.0.0:15000",
            "certificate": "/etc/pebble/cert.pem",
            "privateKey": "/etc/pebble/key.pem",
            "httpPort": 80,
            "tlsPort": 443,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    return json.dumps(config, indent=2) + "\n"


SUDOERS = (
    f"# Written by mailkit: the provider's first user may do anything, without a password.\n"
    f"{ADMIN} ALL=(ALL) NOPASSWD: ALL\n"
)


# -- paths on this machine -----------------------------------------------------------------------------------------
def folder(lab: Lab) -> Path:
    return lab.dir / "provider"


def key_path(lab: Lab) -> Path:
    """The key the reader "uploaded at the provider" (and the lab's hosts accept for ``admin``)."""
    return folder(lab) / "id_ed25519"


def ssh_config_path(lab: Lab) -> Path:
    return folder(lab) / "ssh_config"


def acme_roots_path(lab: Lab) -> Path:
    return folder(lab) / "acme-root.pem"


def public_roots_path(lab: Lab) -> Path:
    """The CAs this machine trusts in the lab's world, as a laptop trusts the public ones: the ACME CA's root (the
    rented server's certificate) and the lab CA's (the other providers', the cloud provider's IMAP among them)."""
    return folder(lab) / "public-roots.pem"


# -- setting it up --------------------------------------------------------------------------------------------------
def setup(lab: Lab, progress: Progress) -> None:
    """Everything provider mode adds to a running lab (idempotent: what is there already is no change)."""
    here = folder(lab)
    here.mkdir(mode=0o700, exist_ok=True)
    if not key_path(lab).exists():
        run_local(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "you@your-laptop", "-f", str(key_path(lab))])
    progress(f"provider: the resolver (Unbound) on {RESOLVER}")
    with lab.connection("dns") as dns_host:
        # The configuration first: Unbound starts as it is installed, and must not take BIND's port 53.
        conf = File("/etc/unbound/unbound.conf.d/mailkit-provider.conf", unbound_conf(lab.root_anchor()))
        iana = File(
            dane.DEBIAN_ANCHOR_FILE,  # Debian's file naming IANA's root key: kept empty in the lab
            "# The lab's root is not IANA's: see mailkit-provider.conf.\n",
        )
        configured = engine.apply(dns_host, [Directory("/etc/unbound/unbound.conf.d", mode=0o755), conf, iana])
        installed = engine.apply(dns_host, [Packages(("unbound",))])
        if configured.changed and not installed.changed:
            dns_host.run(["systemctl", "restart", "unbound"])
    progress(f"provider: the ACME CA (pebble) on {ACME_HOST}")
    chain, key = lab.ca.certificate(ACME_HOST)
    with lab.connection("outside") as outside:
        applied = engine.apply(
            outside,
            [
                Packages(("pebble",)),
                Directory("/etc/pebble", mode=0o755),
                File("/etc/pebble/pebble-config.json", pebble_config()),
                File("/etc/pebble/cert.pem", chain),
                File("/etc/pebble/key.pem", key, mode=0o600, secret=True),
                File("/etc/systemd/system/pebble.service", PEBBLE_UNIT.format(resolver=RESOLVER)),
            ],
        )
        # A restart makes a new root (and so untrusts every certificate issued): only when its files changed.
        restart = "systemctl restart pebble" if applied.changed else "true"
        outside.run(["sh", "-c", f"systemctl daemon-reload && systemctl enable --now pebble && {restart}"])
        root = _pebble_root(outside)
        progress(f"provider: {OLD_USER} at {cloud_provider.HOST}, where {READER} reads her mail too, and an empty "
                 f"account at {backup_host.HOST}")  # fmt: skip
        receiver.ensure(outside, lab)  # her mailbox: the lab's other provider's, for example.net
        passwords = lab.passwords([OLD_USER, READER])
        readers = {READER: (passwords[READER], receiver.RECEIVER.mailbox(READER))}
        old = cloud_account.generate(count=300, seed=1, user=OLD_USER)
        cloud_provider.setup(outside, lab.ca, old, passwords[OLD_USER], readers)
        backup_host.setup(outside, _outside_key(lab), HOSTS["mail"].fqdn)
    acme_root = acme_roots_path(lab)
    acme_root.write_bytes(root)
    public_roots_path(lab).write_bytes(root.rstrip(b"\n") + b"\n" + lab.ca.cert_path.read_bytes())
    _trust_on(lab, "outside", root)
    prepare_mail_host(lab, progress)
    _write_client_files(lab)


def _outside_key(lab: Lab) -> str:
    """The outside host's public key, ``TYPE BASE64``: the backup host's too (one host plays both)."""
    return " ".join(lab.host_key("outside").with_suffix(".pub").read_text().split()[:2])


def _pebble_root(outside: Connection, seconds: float = 30) -> bytes:
    """pebble makes a new root at each start: read it from its management port (over the lab CA's TLS)."""
    deadline = time.monotonic() + seconds
    while True:
        result = outside.run(["curl", "-fsS", "--max-time", "5", f"https://{ACME_HOST}:15000/roots/0"], check=False)
        if result.exited == 0 and "BEGIN CERTIFICATE" in result.stdout:
            return result.stdout.encode()
        if time.monotonic() > deadline:
            raise LabError(f"pebble did not answer on {ACME_HOST}:15000: {result.stderr.strip()[:200]}")
        time.sleep(0.5)


def _trust_on(lab: Lab, name: str, pem: bytes) -> None:
    """A running lab host trusts ``pem`` as it trusts a public CA (Let's Encrypt's roots are in every store)."""
    from mailkit.lab import machine

    machine.trust_ca(lab.host_paths(name).root, pem, "mailkit-acme")


def prepare_mail_host(lab: Lab, progress: Progress) -> None:
    """The mail host as the provider hands it over: ``admin`` with sudo and your key, the provider's resolver."""
    progress(f"provider: the mail host with user {ADMIN} (sudo) and the provider's resolver")
    public = key_path(lab).with_suffix(".pub").read_text()
    with lab.connection("mail") as mail:
        engine.apply(mail, [Packages(("sudo",))])
        mail.run(["sh", "-c", 'id -u "$1" >/dev/null 2>&1 || useradd -m -s /bin/bash "$1"', "sh", ADMIN])
        engine.apply(
            mail,
            [
                File(f"/etc/sudoers.d/{ADMIN}", SUDOERS, mode=0o440),
                Directory(f"/home/{ADMIN}/.ssh", owner=ADMIN, group=ADMIN, mode=0o700),
                File(f"/home/{ADMIN}/.ssh/authorized_keys", public, owner=ADMIN, group=ADMIN, mode=0o600),
                File("/etc/resolv.conf", f"# The hosting provider's resolver\nnameserver {RESOLVER}\n"),
            ],
        )
    _trust_on(lab, "mail", acme_roots_path(lab).read_bytes())


def _write_client_files(lab: Lab) -> None:
    """The SSH config a reader has for a rented server, its known_hosts (accepted once), the env, params, passwords."""
    here = folder(lab)
    mail, outside = HOSTS["mail"], HOSTS["outside"]
    known = here / "known_hosts"
    lines = []
    for name, spec in (("mail", mail), ("outside", outside)):
        key_type, key_b64 = lab.host_key(name).with_suffix(".pub").read_text().split()[:2]
        alias = ALIAS if name == "mail" else PROBE_ALIAS
        lines.append(f"{alias},{spec.fqdn},{spec.address} {key_type} {key_b64}")
    lines.append(f"{BACKUP_ADMIN_ALIAS},{backup_host.HOST},{BACKUP_ADDRESS} {_outside_key(lab)}")
    known.write_text("\n".join(lines) + "\n")
    ssh_config_path(lab).write_text(
        f"# Your rented server and a second machine for the outside checks (written by mailkit lab up --provider)\n"
        f"Host {ALIAS}\n    HostName {mail.address}\n    User {ADMIN}\n    IdentityFile {key_path(lab)}\n"
        f"    IdentitiesOnly yes\n    UserKnownHostsFile {known}\n    StrictHostKeyChecking yes\n\n"
        f"Host {PROBE_ALIAS}\n    HostName {outside.address}\n    User root\n    IdentityFile {lab.client_key}\n"
        f"    IdentitiesOnly yes\n    UserKnownHostsFile {known}\n    StrictHostKeyChecking yes\n\n"
        f"Host {BACKUP_ADMIN_ALIAS}\n    HostName {BACKUP_ADDRESS}\n    User root\n    IdentityFile {lab.client_key}\n"
        f"    IdentitiesOnly yes\n    UserKnownHostsFile {known}\n    StrictHostKeyChecking yes\n"
    )
    mailboxes = ["alice@example.org", "bob@example.org", "carol@b.example.org"]
    params = {
        "DOMAIN": "example.org",
        "HOSTNAME": mail.fqdn,
        "OTHER_DOMAINS": ["b.example.org"],
        "MAILBOXES": mailboxes,
        "ALIASES": {"info@example.org": ["bob@example.org"]},
        "ACME_SERVER": ACME_DIRECTORY,
        "ACME_EMAIL": "postmaster@example.org",
        "BLOCKLISTS": ["bl.example.net*3"],
        # As a reader lists the machine they check from: the guide's checks send wrong passwords on purpose.
        "NEVER_BAN": [outside.address, outside.address6],
        # The moving-in chapter: the mailbox at home and the account moved out of.
        "MAILBOX": mailboxes[0],
        "OLD_HOST": cloud_provider.HOST,
        "OLD_USER": OLD_USER,
        # The backups chapter: the account at the backup host and its key, as the provider's page shows them.
        "BACKUP_HOST": backup_host.HOST,
        "BACKUP_USER": backup_host.USER,
        "BACKUP_HOST_KEY": _outside_key(lab),
    }
    (here / "params.json").write_text(json.dumps(params, indent=2) + "\n")
    write_private(
        here / "passwords",
        "".join(f"{m} {p.reveal()}\n" for m, p in lab.passwords([*mailboxes, OLD_USER, READER]).items()).encode(),
    )
    # As a reader would add a key for a storage box's account: as that account (root follows no link of its).
    authorize = f"runuser -u {backup_host.USER} -- tee -a {backup_host.HOME}/.ssh/authorized_keys >/dev/null"
    env = {
        "MAILKIT_SSH_CONFIG": str(ssh_config_path(lab)),
        "MAILKIT_OUTSIDE": PROBE_ALIAS,
        "MAILKIT_NAMESERVER": RESOLVER,
        "MAILKIT_TRUST_ANCHOR": lab.root_anchor(),  # the lab's root key: its world's IANA
        "MAILKIT_DNS_ROOT": NAMESERVER.address,  # and its root server
        "MAILKIT_CA_FILE": str(public_roots_path(lab)),
        "MAILKIT_EXCHANGER": outside.fqdn,  # the lab's other provider, where Gmail's would be
        "MAILKIT_REGISTRAR": f"{sys.executable} -m mailkit.cli lab registrar",
        "MAILKIT_BACKUP_AUTHORIZE": shlex.join(["ssh", "-F", str(ssh_config_path(lab)), BACKUP_ADMIN_ALIAS, authorize]),
    }
    (here / "env").write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()))


def environment(lab: Lab) -> dict[str, str]:
    """The settings of ``provider/env``, for a process that runs the own-server path against provider mode."""
    found = {}
    for line in (folder(lab) / "env").read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        found[name] = shlex.split(value)[0]
    return found


# -- the registrar ---------------------------------------------------------------------------------------------------
def registrar(lab: Lab, text: str) -> list[RecordSet]:
    """Publish zone text as a DNS provider's web form would: here by the same signed dynamic update (RFC 2136) that
    ``mailkit registrar rfc2136`` sends to a real server, with the lab's key."""
    records = parse_zone_text(text)
    publish_rfc2136(records, NAMESERVER.address, TsigKey(TSIG_KEY_NAME, "hmac-sha256", lab.tsig_secret()))
    return records
