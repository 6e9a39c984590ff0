"""The lab as a target: what the lab plays for the guide, behind the same :class:`mailkit.server.target.Target` value.

DNS is published by a TSIG-signed update (the lab's "DNS provider" has an API), the certificate comes from the
lab's CA, passwords are derived from a secret the lab keeps, the outside host is ``lab:outside`` with its
independent receiver, and two of its addresses play a spam bot and a listed sender.

>>> make("mail").destination, make("mail").outside_name, make("mail").blocklists
('mail.example.org', 'lab:outside', ('bl.example.net*3',))
"""

from __future__ import annotations

import email.message
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from mailkit.core.errors import LabError, UsageError
from mailkit.core.ssh import Connection
from mailkit.core.values import Password
from mailkit.domain.records import Lookup, RecordPlan, RecordSet, lookup_at, plan
from mailkit.lab.dns import NAMESERVER, set_records
from mailkit.lab.layout import (
    BLOCKLIST_ZONE,
    BOT_ADDRESS,
    GUESSER_ADDRESS,
    HOSTS,
    LISTED_ADDRESS,
    ROAMING_USER_ADDRESS,
    host_spec,
)
from mailkit.server.backup_space import BackupSpace
from mailkit.server.old_account import OldAccount
from mailkit.server.target import Guessers, Published, SpamSenders, Target, demos_wanted


def validate(name: str) -> None:
    if host_spec(name) is None:
        raise UsageError(f"no lab host {name!r}: choose one of {', '.join(HOSTS)} or a student (student01)")


def _trust_anchor() -> str | None:
    """The lab's root key (its zones are signed from there), None while the lab has none: then IANA's is used, and
    the lab's chain shows as not matching it."""
    from mailkit.lab.lab import Lab

    try:
        return Lab().root_anchor()
    except LabError:
        return None


def make(name: str) -> LabTarget:
    """The lab host ``name`` (``mail``, ``outside``, ``student07``) as a target."""
    validate(name)
    spec = host_spec(name)
    assert spec is not None
    return LabTarget(
        f"lab:{name}",
        spec.fqdn,
        outside_name="lab:outside",
        nameserver=NAMESERVER.address,
        trust_anchor=_trust_anchor(),
        dns_root=NAMESERVER.address,  # the lab's root zone is on its name server
        blocklists=(f"{BLOCKLIST_ZONE}*3",),
        # Names in the lab block list's zone, as a domain list's are in theirs: nothing is listed until a test does.
        domain_blocklists=(f"dbl.{BLOCKLIST_ZONE}",),
        relay_domain="example.net",
        foreign_exchanger=HOSTS["outside"].fqdn,
        offline=True,
    )


def lab_connection(name: str) -> Connection:
    """A connection to a lab host, with the lab's key, ssh_config and known_hosts."""
    from mailkit.lab.lab import Lab

    validate(name)
    return Lab().connection(name)


@dataclass(frozen=True)
class LabReceiver:
    """The lab's independent receiver (:mod:`mailkit.lab.receiver`), read over SSH on the outside host."""

    outside: Connection

    @property
    def address(self) -> str:
        from mailkit.lab.receiver import RECEIVER

        return f"dana@{RECEIVER.domain}"

    @property
    def authserv(self) -> str:
        from mailkit.lab.receiver import RECEIVER

        return RECEIVER.host

    def ensure(self) -> None:
        from mailkit.lab import receiver
        from mailkit.lab.lab import Lab

        receiver.ensure(self.outside, Lab())

    def newest(
        self, wanted: Callable[[email.message.Message], bool], *, seconds: float = 0
    ) -> tuple[bytes, email.message.Message] | None:
        from mailkit.lab import receiver

        return receiver.newest(self.outside, self.address, wanted, seconds=seconds)


@dataclass(frozen=True)
class LabTarget(Target):
    """A lab host: what :class:`Target` does for your own server, done the lab's way."""

    def connect(self) -> Connection:
        return lab_connection(self.name.partition(":")[2])

    def ca_file_here(self) -> str:
        """The lab CA's certificate on this machine (the lab's hosts trust it already)."""
        from mailkit.lab.lab import Lab

        return str(Lab().ca.cert_path)

    def lookup(self) -> Lookup:
        return lookup_at(NAMESERVER.address)

    @property
    def helo(self) -> str:
        return HOSTS["outside"].fqdn

    @property
    def demos(self) -> bool:
        """The lab shows the optional demos, unless the run was asked not to (``guide run --no-demos``)."""
        return demos_wanted()

    def publish(self, records: Sequence[RecordSet], lookup: Lookup | None = None) -> RecordPlan | Published:
        """The lab's DNS provider has an API: a TSIG-signed dynamic update, in effect at once."""
        from mailkit.lab.lab import Lab

        lookup = lookup or self.lookup()
        done = plan(records, lookup, NAMESERVER.fqdn)
        secret = Lab().tsig_secret()
        for change in done.changes:
            wanted = change.wanted
            set_records(wanted.name, wanted.rtype, list(wanted.values), secret, ttl=wanted.ttl)
        return done

    def passwords(self, mailboxes: Sequence[str], given: Mapping[str, str] | None = None) -> dict[str, Password]:
        """Given ones, else derived from a secret kept in the lab's state (root only): stable across runs."""
        if given:
            return super().passwords(mailboxes, given)
        return lab_passwords(mailboxes)

    @property
    def issues_certificates(self) -> bool:
        return True

    def issue_certificate(self, hostname: str) -> tuple[bytes | None, bytes | None]:
        """The lab CA issues the certificate (on a real server certbot gets one from Let's Encrypt)."""
        from mailkit.lab.lab import Lab

        return Lab().ca.certificate(hostname)

    def old_account(self, host: str, user: str, outside: Connection | None = None) -> OldAccount:
        """The lab's cloud provider, its account as generated (:mod:`mailkit.lab.cloud_account`), set up afresh on
        the outside host; its app password derived like the lab's others."""
        from mailkit.lab import cloud_account, cloud_provider
        from mailkit.lab.lab import Lab

        if host != cloud_provider.HOST or outside is None:
            raise UsageError(f"the lab's cloud provider is {cloud_provider.HOST}, set up from the outside host")
        account = super().old_account(host, user)
        cloud_provider.setup(outside, Lab().ca, cloud_account.generate(count=300, seed=1, user=user), account.password)
        return account

    def deliver_to_old_account(self, outside: Connection, account: OldAccount, message: bytes) -> bool:
        from mailkit.lab import cloud_provider

        cloud_provider.deliver(outside, str(account.user), message)
        return True

    def backup_space(
        self, host: str, user: str, path: str, host_key: str, port: int = 22, outside: Connection | None = None
    ) -> BackupSpace:
        """The lab's backup host (:mod:`mailkit.lab.backup_host`) set up afresh on the outside host, an empty
        account; its host key is the outside host's, which the lab knows (given: ignored)."""
        from mailkit.lab import backup_host
        from mailkit.lab.lab import Lab

        if host != backup_host.HOST or user != backup_host.USER or outside is None:
            raise UsageError(f"the lab's backup host is {backup_host.USER}@{backup_host.HOST}, set up from outside")
        key = Lab().host_key("outside").with_suffix(".pub").read_text()
        return backup_host.setup(outside, key, path)

    def authorize_backup_key(self, outside: Connection | None, space: BackupSpace, line: str) -> str:
        from mailkit.lab import backup_host

        if outside is None:
            raise UsageError("the lab's backup host is set up from the outside host")
        backup_host.authorize(outside, line)
        return f"the lab's backup host {space.host} takes the server's key, append-only"

    def receiver(self, outside: Connection | None) -> LabReceiver | None:
        return LabReceiver(outside) if outside is not None else None

    @property
    def senders(self) -> SpamSenders:
        return SpamSenders(BOT_ADDRESS, LISTED_ADDRESS, BLOCKLIST_ZONE)

    @property
    def guessers(self) -> Guessers:
        return Guessers(GUESSER_ADDRESS, ROAMING_USER_ADDRESS)

    @property
    def never_ban(self) -> tuple[str, ...]:
        """The outside host's own addresses: the guide's checks send wrong passwords from them on purpose."""
        outside = HOSTS["outside"]
        return (outside.address, outside.address6)


def lab_passwords(mailboxes: Sequence[str]) -> dict[str, Password]:
    """Passwords for lab mailboxes: derived from a secret kept in the lab's state (root only), stable across runs."""
    from mailkit.lab.lab import Lab

    return Lab().passwords(mailboxes)
