"""Which server the guide works on, and everything that differs between the lab and your own server.

A notebook's ``TARGET`` (or ``--host``) is resolved once into a :class:`Target`: how to reach the server, which
resolver answers for it, which CA verifies its certificate, which block lists it uses, how DNS records get
published, where the outside checks run from, and which steps exist only in the lab. Your own server is a
:class:`Target` as it is; the lab is one more implementation of it (:mod:`mailkit.lab.lab_target`), chosen here by
the ``lab:`` prefix and nowhere else.

>>> resolve_target(None, env={})
'lab:mail'
>>> server = target_of("admin@mail.example.net", env={})
>>> server.destination, server.blocklists, server.relay_domain
('admin@mail.example.net', ('zen.spamhaus.org', 'bl.spamcop.net'), 'gmail.com')
>>> server.receiver(None) is None, server.offline
(True, False)
"""

from __future__ import annotations

import dataclasses
import errno
import importlib
import ipaddress
import os
import re
import stat
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mailkit.core.errors import MailkitError, UsageError
from mailkit.core.ssh import Connection
from mailkit.core.values import EmailAddress, Hostname, Password, ValueRejected
from mailkit.domain.dnssec import trust_anchor
from mailkit.domain.records import Lookup, RecordPlan, RecordSet, ZoneText, plan, zone_text
from mailkit.server.backup_space import BackupSpace
from mailkit.server.old_account import OldAccount

DEFAULT_TARGET = "lab:mail"
ENV_VAR = "MAILKIT_HOST"
OUTSIDE_ENV = "MAILKIT_OUTSIDE"
#: A command that publishes zone text (read on its standard input) at your DNS provider, as certbot's hooks do.
REGISTRAR_ENV = "MAILKIT_REGISTRAR"
#: A command that adds the ``authorized_keys`` line it reads on standard input at the backup host (the backups
#: chapter's second step, for a run with nobody to paste it).
BACKUP_AUTHORIZE_ENV = "MAILKIT_BACKUP_AUTHORIZE"
#: A file of ``address password`` lines (mode 0600): the mailboxes' passwords for a run without a prompt.
PASSWORDS_ENV = "MAILKIT_PASSWORDS_FILE"
#: The resolver the checks ask (an address), and a CA file that verifies the server here, for your own server.
NAMESERVER_ENV = "MAILKIT_NAMESERVER"
CA_FILE_ENV = "MAILKIT_CA_FILE"
#: Where DNSSEC's chain starts for the checks, a DS record of the root; unset: IANA's root key.
TRUST_ANCHOR_ENV = "MAILKIT_TRUST_ANCHOR"
#: The root name server the server's own validating resolver starts from (an address), in a DNS world of its own
#: (a lab, a class room) whose root key is ``MAILKIT_TRUST_ANCHOR``; unset: the internet's root servers.
DNS_ROOT_ENV = "MAILKIT_DNS_ROOT"
#: Another provider's mail server (a host name) that the outbound check greets on port 25 to see that the port is
#: open; unset: Gmail's, in a DNS world of your own (a lab, a class room) one of that world's.
EXCHANGER_ENV = "MAILKIT_EXCHANGER"
#: ``yes`` when the server has no route to the internet (an isolated network, a class room): rspamd's lookups off.
OFFLINE_ENV = "MAILKIT_OFFLINE"
#: ``no``: a target that runs the guide's optional demos (the lab) skips them (``mailkit guide run --no-demos``).
DEMOS_ENV = "MAILKIT_DEMOS"
_DESTINATION = re.compile(r"^(?:[a-z_][a-z0-9_.-]{0,31}@)?[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})$")
#: Block lists a real server is looked up on by default (Spamhaus answers only through your own resolver).
PUBLIC_BLOCKLISTS = ("zen.spamhaus.org", "bl.spamcop.net")
#: Domain block lists (RFC 5782 section 2.2) the mail domains are looked up on.
PUBLIC_DOMAIN_BLOCKLISTS = ("dbl.spamhaus.org",)
#: Kinds of target other than an SSH destination: ``kind:name`` -> the module that makes it (``make(name)``).
KINDS = {"lab": "mailkit.lab.lab_target"}


class Receiver(Protocol):
    """Another provider's mail server whose own verdicts (``Authentication-Results``) the checks can read."""

    @property
    def address(self) -> str: ...  # where test messages go

    @property
    def authserv(self) -> str: ...  # the authserv-id it writes in Authentication-Results

    def ensure(self) -> None: ...

    def newest(
        self, wanted: Callable[[Any], bool], *, seconds: float = 0
    ) -> tuple[bytes, Any] | None: ...  # (raw, email.message.Message)


@dataclass(frozen=True)
class SpamSenders:
    """Addresses on "the internet" that play a spam bot and a listed sender (only a lab has them)."""

    bot: str  # talks before the greeting
    listed: str  # is on ``blocklist``
    blocklist: str


@dataclass(frozen=True)
class Guessers:
    """Two addresses on "the internet" (only a lab has them to spare): a password guesser, and a user of the
    server who logs in from elsewhere while the guesser is banned."""

    guesser: str
    user: str


@dataclass(frozen=True)
class Published:
    """Records handed to a DNS provider the registrar's way, and how long the resolver took to answer with them."""

    text: ZoneText
    changed: bool
    waited: float | None = None  # seconds until the resolver answered every record; None: not waited for
    via: str = ""

    def __str__(self) -> str:
        if not self.changed:
            return "DNS: no change (the resolver already answers these records)"
        lines = [f"Zone text for your DNS provider{f' (handed to {self.via})' if self.via else ''}:", str(self.text)]
        if self.waited is not None:
            lines.append(f"The resolver answers every record now (after {_rounded(self.waited)}).")
        return "\n".join(lines).rstrip() + "\n"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def _rounded(seconds: float) -> str:
    """Waits shown to the nearest 10 s (below a minute) or minute, so stored notebook output stays the same.

    >>> _rounded(4.2), _rounded(75)
    ('less than a minute', 'about 1 min')
    """
    return "less than a minute" if seconds < 60 else f"about {round(seconds / 60)} min"


@dataclass(frozen=True)
class Target:
    """Your own server: reached over SSH as you reach it yourself; DNS published by pasting zone text.

    ``destination`` is an SSH destination (``[user@]host`` or an alias from your ssh_config); a user other
    than root runs commands with ``sudo -n``. ``outside`` is another host with the clients the checks use
    (``swaks``, ``openssl``, ``python3``), ideally on another network. ``nameserver`` is the resolver the checks
    ask (None: this machine's); ``ca_file`` verifies the server's certificate (None: the system's CAs).
    ``offline``: the server has no route to the internet (``MAILKIT_OFFLINE=yes``): rspamd's lookups are off.
    ``trust_anchor``: where DNSSEC's chain starts, a DS record of the root (None: IANA's root key).
    ``dns_root``: the root name server of a DNS world of its own (None: the internet's), where the server's own
    resolver starts (part 3 section 13); it comes with that world's ``trust_anchor``.
    """

    name: str
    destination: str
    outside_name: str | None = None
    nameserver: str | None = None
    trust_anchor: str | None = None
    dns_root: str | None = None
    ca_file: str | None = None
    blocklists: tuple[str, ...] = PUBLIC_BLOCKLISTS
    domain_blocklists: tuple[str, ...] = PUBLIC_DOMAIN_BLOCKLISTS
    relay_domain: str = "gmail.com"
    foreign_exchanger: str = "gmail-smtp-in.l.google.com"
    offline: bool = False
    registrar: str | None = None
    backup_authorize: str | None = None
    passwords_file: str | None = None
    wait_for_dns: float = 3600

    # -- reaching it -------------------------------------------------------------------------------
    def connect(self) -> Connection:
        """The server, over SSH (opened on first use)."""
        return Connection(self.destination)

    def outside(self) -> Connection:
        """The host the outside checks run from: they run clients only, so never through ``sudo`` (an ordinary
        account there is enough, and better)."""
        if not self.outside_name:
            raise UsageError(
                "set OUTSIDE (or MAILKIT_OUTSIDE) to another host you reach over SSH that has swaks, openssl and "
                "python3: the checks connect to your server from there, as the internet does"
            )
        conn = connect(self.outside_name)
        conn.sudo = False
        return conn

    def ca_file_here(self) -> str | None:
        """The CA file that verifies the server's certificate from this machine (None: the system's CAs)."""
        return self.ca_file

    @property
    def demos(self) -> bool:
        """Whether the guide runs its optional demos (they change the server for a minute): the lab's choice."""
        return False

    @property
    def helo(self) -> str:
        """The name the status probe greets with."""
        import socket

        name = socket.getfqdn()
        return name if "." in name and not name.startswith("localhost") else "mailkit-check.example.net"

    # -- DNS ---------------------------------------------------------------------------------------
    def lookup(self) -> Lookup:
        """Ask the resolver in effect, as any mail server on the internet would."""
        from mailkit.domain.lookup import resolver_lookup

        return resolver_lookup(self.nameserver)

    @property
    def nameserver_label(self) -> str:
        return self.nameserver or "the system's resolver"

    def publish(self, records: Sequence[RecordSet], lookup: Lookup | None = None) -> RecordPlan | Published:
        """The registrar's way: zone text for your DNS provider, then a wait until the resolver answers with it.

        With a registrar command (``MAILKIT_REGISTRAR``), the text goes to it on standard input; without one,
        you paste it at your provider while this waits (up to ``wait_for_dns`` seconds).
        """
        lookup = lookup or self.lookup()
        changes = plan(records, lookup, self.nameserver_label)
        if not changes:
            return Published(zone_text(records), False)
        text = zone_text_with_deletions([c.wanted for c in changes.changes])
        if self.registrar:
            hand_to_command(self.registrar, text, "the registrar command")
        else:
            print(f"Publish this at your DNS provider; waiting until {self.nameserver_label} answers with it:")
            print(text, end="", flush=True)
        waited = wait_until_published([c.wanted for c in changes.changes], lookup, self.wait_for_dns)
        return Published(text, True, waited, "the registrar command" if self.registrar else "")

    # -- secrets -------------------------------------------------------------------------------------
    def passwords(self, mailboxes: Sequence[str], given: Mapping[str, str] | None = None) -> dict[str, Password]:
        """The mailboxes' passwords: given, else from ``passwords_file``, else asked for (never echoed)."""
        if given:
            return {k: Password(v, field=f"PASSWORDS[{k}]") for k, v in given.items()}
        if self.passwords_file:
            return read_passwords_file(Path(self.passwords_file), mailboxes)
        return {str(m): Password(_ask(f"password for {m}: "), field=str(m)) for m in mailboxes}

    @property
    def issues_certificates(self) -> bool:
        """Whether the target hands over a certificate (the lab's CA); your own server gets one by ACME."""
        return False

    def issue_certificate(self, hostname: str) -> tuple[bytes | None, bytes | None]:
        """A certificate made off the server, to upload: none for your own server (certbot runs on it)."""
        return None, None

    # -- moving in --------------------------------------------------------------------------------------
    def old_account(self, host: str, user: str, outside: Connection | None = None) -> OldAccount:
        """The account to move out of, at ``host`` as ``user``: its app password from the passwords file (a line
        ``user password``) or asked for, never echoed."""
        password = self.passwords([user])[user]
        return OldAccount(Hostname(host, field="OLD_HOST"), EmailAddress(user, field="OLD_USER"), password)

    def deliver_to_old_account(self, outside: Connection, account: OldAccount, message: bytes) -> bool:
        """Make a message arrive at the old provider (the moving-in chapter's straggler): only a lab can; on your own
        server mail keeps arriving there by itself until the MX record moves."""
        return False

    # -- backups ----------------------------------------------------------------------------------------
    def backup_space(
        self, host: str, user: str, path: str, host_key: str, port: int = 22, outside: Connection | None = None
    ) -> BackupSpace:
        """Where the backups go: the account at your backup host (a storage box, a second server), as its
        provider names it, with the host key its page shows (compare ``ssh-keygen -lf`` of it with theirs)."""
        return BackupSpace(Hostname(host, field="BACKUP_HOST"), user, path, host_key, port)

    def authorize_backup_key(self, outside: Connection | None, space: BackupSpace, line: str) -> str:
        """Give the backup host the server's key (``line``, append-only): handed to the command of
        ``MAILKIT_BACKUP_AUTHORIZE`` on its standard input when there is one, else you paste it there."""
        if self.backup_authorize:
            hand_to_command(self.backup_authorize, line + "\n", "the backup host's command")
            return f"{space.host} took the server's key, append-only (through {BACKUP_AUTHORIZE_ENV})"
        return (
            f"add this line to ~/.ssh/authorized_keys of {space.user} at {space.host} (a storage box: its "
            f"page for SSH keys; mind that it keeps the command= part), then go on:\n{line}"
        )

    # -- what only a lab has ---------------------------------------------------------------------------
    def receiver(self, outside: Connection | None) -> Receiver | None:
        """An independent receiver whose verdicts the checks read: none you could read from here."""
        return None

    @property
    def senders(self) -> SpamSenders | None:
        return None

    @property
    def guessers(self) -> Guessers | None:
        return None

    @property
    def never_ban(self) -> tuple[str, ...]:
        """Addresses the guide's checks come from, which fail2ban must not ban for their wrong passwords: on your
        own server, give yours as the NEVER_BAN parameter."""
        return ()

    def without(self, what: str) -> str:
        """Why a lab-only step is skipped here, and what to do instead by hand."""
        return LAB_ONLY[what]


def _ask(prompt: str) -> str:
    """A password from whoever runs this: a terminal, or JupyterLab's password box; an error where nobody can answer
    (a headless run, whose kernel has no stdin)."""
    import getpass
    import sys

    in_notebook = "ipykernel" in sys.modules
    if not in_notebook and not (sys.stdin and sys.stdin.isatty()):
        raise UsageError(NO_PROMPT)
    try:
        return getpass.getpass(prompt)
    except Exception as exc:  # EOFError, or IPython's StdinNotImplementedError, when nobody can answer
        if isinstance(exc, EOFError) or type(exc).__name__ == "StdinNotImplementedError":
            raise UsageError(NO_PROMPT) from None
        raise


NO_PROMPT = (
    f"nobody to ask for passwords: give a passwords file ({PASSWORDS_ENV} or --passwords FILE, lines "
    "'address password', mode 0600)"
)

#: What a lab-only step is replaced with on your own server.
LAB_ONLY = {
    "receiver": (
        "skipped: no receiver whose verdicts mailkit can read. Send a message to an address you own at a big "
        "provider, open it there, show the original message and paste its headers into 'mailkit headers FILE': "
        "it reads their spf=, dkim= and dmarc= verdicts (or 'mailkit check --send-to ADDRESS --read-at IMAP-HOST' "
        "does both and shows them as a row)"
    ),
    "bot": (
        "skipped: there is no spam bot to borrow on the internet. 'journalctl -u postfix\\* -g PREGREET' on your "
        "server shows the ones postscreen drops every day"
    ),
    "listed": (
        "skipped: no listed address to send from. 'mailkit check' looks up your own server's addresses on the "
        "block lists instead"
    ),
    "straggler": (
        "skipped: mailkit cannot send to your old account from here. Until the MX record has moved (and for the "
        "resolvers' caches' TTL after), mail still arrives there: the final sync picks it up"
    ),
    "greylisting": "skipped: the greylisting demo changes rspamd for a minute; it runs in the lab, unless asked not to",
}


def zone_text_with_deletions(records: Sequence[RecordSet]) -> ZoneText:
    """Zone text for ``records``; a record set with no values is a deletion, written as a comment a person reads
    and a registrar command parses (``; delete NAME TYPE``).

    >>> print(zone_text_with_deletions([RecordSet("s1._domainkey.example.org", "TXT", ())]), end="")
    ; delete s1._domainkey.example.org. TXT
    """
    lines = []
    for record in records:
        lines += record.zone_lines() or [f"; delete {record.name}. {record.rtype}"]
    return ZoneText("\n".join(lines) + "\n")


def hand_to_command(command: str, text: str, what: str, timeout: float = 120) -> None:
    """Run ``command`` (split as a shell splits words, no shell) with ``text`` on its standard input: the registrar
    command, the backup host's. ``what`` names it in the error (its last line, cut: never the text given).

    >>> hand_to_command("false", "", "the registrar command")
    Traceback (most recent call last):
    ...
    mailkit.core.errors.MailkitError: the registrar command 'false' exited 1: (nothing)
    """
    import shlex

    argv = shlex.split(command)
    if not argv:
        raise MailkitError(f"{what} is empty")
    try:
        done = subprocess.run(argv, input=text, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MailkitError(f"{what} {argv[0]!r} failed: {exc}") from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(nothing)"]
        raise MailkitError(f"{what} {argv[0]!r} exited {done.returncode}: {said[0][:200]}")


def wait_until_published(records: Sequence[RecordSet], lookup: Lookup, timeout: float, interval: float = 2.0) -> float:
    """Seconds until ``lookup`` answers every record as wanted; an error naming what is still missing at ``timeout``."""
    start = time.monotonic()
    while True:
        missing = [r for r in records if not r.same_as(_quietly(lookup, r))]
        if not missing:
            return time.monotonic() - start
        if time.monotonic() - start >= timeout:
            names = ", ".join(f"{r.rtype} {r.name}" for r in missing)
            raise MailkitError(f"after {timeout:.0f} s the resolver still does not answer as published: {names}")
        time.sleep(interval)


def _quietly(lookup: Lookup, record: RecordSet) -> tuple[str, ...]:
    try:
        return lookup(record.name, record.rtype)
    except MailkitError:
        return ("(no answer)",)


def read_passwords_file(path: Path, mailboxes: Sequence[str]) -> dict[str, Password]:
    """``address password`` lines from a file only its owner can read; every mailbox must have one.

    The file is refused when others can read it, and a line that does not parse is named by number only:
    the password itself is never shown.
    """
    try:  # never through a symlink: in a folder others can write, it could point anywhere
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise UsageError(f"the passwords file {path} is not a regular file")
        with os.fdopen(fd, "rb") as stream:
            text = stream.read(64 * 1024).decode("utf-8", errors="replace")
    except OSError as exc:
        why = "it is a symlink" if exc.errno == errno.ELOOP else exc.strerror
        raise UsageError(f"cannot read the passwords file {path}: {why}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(f"the passwords file {path} can be read by others: chmod 600 {path}")
    found: dict[str, Password] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        address, _, password = line.strip().partition(" ")
        if not password:
            raise UsageError(f"{path} line {number}: not 'address password'")
        found[address] = Password(password.strip(), field=f"{path.name} line {number}")
    lacking = [str(m) for m in mailboxes if str(m) not in found]
    if lacking:
        raise UsageError(f"{path} has no password for {', '.join(lacking)}")
    return {str(m): found[str(m)] for m in mailboxes}


# -- choosing one ----------------------------------------------------------------------------------------------
def resolve_target(target: str | None = None, *, env: Mapping[str, str] | None = None) -> str:
    """The target in effect, validated (a destination can never smuggle ssh options).

    Order: an explicit argument, then ``MAILKIT_HOST``, then the lab's ``mail`` host.
    """
    env = os.environ if env is None else env
    chosen = target or env.get(ENV_VAR) or DEFAULT_TARGET
    kind, sep, name = chosen.partition(":")
    if sep and kind in KINDS:
        _kind(kind).validate(name)
        return chosen
    if not _DESTINATION.fullmatch(chosen):
        raise UsageError(f"{chosen!r} is not an SSH destination like 'user@host.example.org' or an alias")
    return chosen


def _yes(value: str, name: str) -> bool:
    """A yes/no setting of the environment: empty is no; anything but yes/no/true/false/1/0 is refused.

    >>> _yes("yes", "X"), _yes("", "X")
    (True, False)
    """
    answer = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False, "": False}
    if value.strip().lower() not in answer:
        raise UsageError(f"{name}={value[:20]!r}: say yes or no")
    return answer[value.strip().lower()]


def demos_wanted(env: Mapping[str, str] | None = None) -> bool:
    """Whether a target that can run the guide's optional demos runs them: unless ``MAILKIT_DEMOS`` says no.

    >>> demos_wanted({}), demos_wanted({"MAILKIT_DEMOS": "no"})
    (True, False)
    """
    value = (os.environ if env is None else env).get(DEMOS_ENV)
    return True if value is None else _yes(value, DEMOS_ENV)


def _dns_root(env: Mapping[str, str]) -> str | None:
    """``MAILKIT_DNS_ROOT``: an address, and only with the root key that goes with it.

    >>> _dns_root({"MAILKIT_DNS_ROOT": "198.51.100.53"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mailkit.core.values.ValueRejected: MAILKIT_DNS_ROOT: '198.51.100.53' comes without its root key: ...
    """
    root = env.get(DNS_ROOT_ENV) or None
    if root is None:
        return None
    try:
        ipaddress.ip_address(root)
    except ValueError:
        raise ValueRejected(DNS_ROOT_ENV, root, "is not an IP address") from None
    if not env.get(TRUST_ANCHOR_ENV):
        raise ValueRejected(DNS_ROOT_ENV, root, f"comes without its root key: set {TRUST_ANCHOR_ENV} too")
    return root


def _kind(kind: str) -> Any:
    return importlib.import_module(KINDS[kind])


def target_of(
    name: str | None = None,
    *,
    outside: str | None = None,
    nameserver: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Target:
    """Resolve ``name`` (a notebook's ``TARGET``) once into the value that knows everything about it.

    ``outside`` and ``nameserver`` override the target's own choice; for your own server the environment may give
    ``MAILKIT_OUTSIDE``, ``MAILKIT_NAMESERVER``, ``MAILKIT_CA_FILE``, ``MAILKIT_REGISTRAR``,
    ``MAILKIT_BACKUP_AUTHORIZE``, ``MAILKIT_PASSWORDS_FILE``, and for a DNS world of its own
    ``MAILKIT_TRUST_ANCHOR``, ``MAILKIT_DNS_ROOT`` and ``MAILKIT_EXCHANGER``.
    """
    env = os.environ if env is None else env
    chosen = resolve_target(name, env=env)
    kind, sep, rest = chosen.partition(":")
    if sep and kind in KINDS:
        made: Target = _kind(kind).make(rest)
    else:
        made = Target(
            chosen,
            chosen,
            outside_name=env.get(OUTSIDE_ENV) or None,
            ca_file=env.get(CA_FILE_ENV) or None,
            trust_anchor=trust_anchor(env[TRUST_ANCHOR_ENV], TRUST_ANCHOR_ENV) if env.get(TRUST_ANCHOR_ENV) else None,
            dns_root=_dns_root(env),
            registrar=env.get(REGISTRAR_ENV) or None,
            backup_authorize=env.get(BACKUP_AUTHORIZE_ENV) or None,
            passwords_file=env.get(PASSWORDS_ENV) or None,
            offline=_yes(env.get(OFFLINE_ENV, ""), OFFLINE_ENV),
        )
        if env.get(EXCHANGER_ENV):
            made = dataclasses.replace(made, foreign_exchanger=str(Hostname(env[EXCHANGER_ENV], field=EXCHANGER_ENV)))
    if outside is not None and outside != made.outside_name:
        made = dataclasses.replace(made, outside_name=resolve_target(outside, env=env))
    nameserver = nameserver if nameserver is not None else (None if sep and kind in KINDS else env.get(NAMESERVER_ENV))
    if nameserver:
        try:
            ipaddress.ip_address(nameserver)
        except ValueError:
            raise ValueRejected("NAMESERVER", nameserver, "is not an IP address") from None
        made = dataclasses.replace(made, nameserver=nameserver)
    return made


def connect(name: str | None = None) -> Connection:
    """The connection for ``name`` (see :func:`resolve_target`); opened on first use."""
    return target_of(name).connect()
