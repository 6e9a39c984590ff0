"""Part 1 of the guide, Postfix: the desired state of each section, and the checks that verify it.

The notebook explains each setting; this module holds what it applies, so the notebook cells stay
short and the same state can be applied from the CLI or tests.

>>> p = Part1(domain="example.org", other_domains=("b.example.org",), mailboxes=("alice@example.org",))
>>> p.virtual_mailbox_domains
'$mydomain b.$mydomain'
"""

from __future__ import annotations

import email
import email.policy
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage

from mailkit.clients.smtp import check_delivered, check_refused, find_in_maildir, probe, relay_tricks
from mailkit.core.checks import CheckResult
from mailkit.core.errors import MailkitError, UsageError
from mailkit.core.mail_layout import LAYOUT, MailLayout
from mailkit.core.resources import Directory, LookupTable, Packages, Postconf, Resource, SystemAccount
from mailkit.core.ssh import Connection
from mailkit.core.templates import Templates
from mailkit.core.values import Domain, EmailAddress, Hostname
from mailkit.server import rules

# The mail layout's facts, named as part 1's readers know them (one source: mailkit.core.mail_layout).
VMAIL_UID = LAYOUT.vmail_uid
VMAIL_BASE = LAYOUT.vmail_base
MAILBOX_MAP = LAYOUT.mailbox_map
ALIAS_MAP = LAYOUT.alias_map
GUIDE = "01-postfix.ipynb"


def _relative(domain: str, mydomain: str) -> str:
    """Write a domain relative to $mydomain where it can be, as main.cf readers expect."""
    if domain == mydomain:
        return "$mydomain"
    if domain.endswith("." + mydomain):
        return domain[: -len(mydomain)] + "$mydomain"
    return domain


#: Role addresses every mail domain answers (RFC 2142), sent to the first mailbox unless given.
ROLE_ADDRESSES = ("postmaster", "abuse", "hostmaster")


@dataclass(frozen=True)
class Part1:
    """The parameters of part 1, validated on creation (nothing reaches a host before)."""

    domain: str = "example.org"
    other_domains: Sequence[str] = ("b.example.org",)
    hostname: str = ""  # the server's own name; empty (or None) means mail.<domain>
    mailboxes: Sequence[str] = ("alice@example.org", "bob@example.org", "carol@b.example.org")
    aliases: Mapping[str, Sequence[str]] = field(default_factory=dict)
    layout: MailLayout = LAYOUT

    def __post_init__(self) -> None:
        domain = Domain(self.domain, field="DOMAIN")
        others = tuple(Domain(d, field="OTHER_DOMAINS") for d in self.other_domains)
        hostname = Hostname(self.hostname or f"mail.{domain}", field="HOSTNAME")
        mailboxes = tuple(EmailAddress(m, field="MAILBOXES") for m in self.mailboxes)
        domains = (domain, *others)
        if len(set(domains)) != len(domains):
            raise UsageError("DOMAIN and OTHER_DOMAINS must not repeat a domain")
        if not mailboxes:
            raise UsageError("MAILBOXES: at least one mailbox is needed (postmaster@ and abuse@ need a target)")
        for mailbox in mailboxes:
            if mailbox.domain not in domains:
                raise UsageError(f"MAILBOXES: {mailbox} is not in {', '.join(domains)}")
        if hostname in domains:
            raise UsageError(f"HOSTNAME {hostname} must not be one of the mail domains (see mydestination)")
        aliases: dict[EmailAddress, tuple[EmailAddress, ...]] = {}
        for alias, targets in self.aliases.items():
            address = EmailAddress(alias, field="ALIASES")
            if address in mailboxes:
                raise UsageError(f"ALIASES: {address} is a mailbox; an address is either a mailbox or an alias")
            if address.domain not in domains:
                raise UsageError(f"ALIASES: {address} is not in {', '.join(domains)}")
            aliases[address] = tuple(EmailAddress(t, field=f"ALIASES[{alias}]") for t in targets)
            if not aliases[address]:
                raise UsageError(f"ALIASES: {address} has no target")
        # RFC 2142: every mail domain answers postmaster@, abuse@ and hostmaster@ (the DNS contact). Mail the
        # server itself sends to plain "root" (cron, apt, smartd) becomes root@DOMAIN ($myorigin): it needs a
        # mailbox too, or it bounces to root@DOMAIN again and is lost.
        for d in domains:
            for role in ROLE_ADDRESSES + (("root",) if d == domain else ()):
                address = EmailAddress(f"{role}@{d}")
                if address not in mailboxes:
                    aliases.setdefault(address, (mailboxes[0],))
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "other_domains", others)
        object.__setattr__(self, "hostname", hostname)
        object.__setattr__(self, "mailboxes", mailboxes)
        object.__setattr__(self, "aliases", dict(sorted(aliases.items())))

    # -- what each section applies -------------------------------------------------------------
    @property
    def domains(self) -> tuple[str, ...]:
        return (self.domain, *self.other_domains)

    def install(self) -> list[Resource]:
        """Postfix as an "Internet Site", LMDB map support, and a `mail` command for test messages."""
        preseed = (
            "postfix postfix/main_mailer_type select Internet Site",
            f"postfix postfix/mailname string {self.hostname}",
        )
        return [Packages(("postfix", "postfix-lmdb", "bsd-mailx"), preseed=preseed)]

    def identity(self) -> list[Resource]:
        myhostname = "mail.$mydomain" if self.hostname == f"mail.{self.domain}" else str(self.hostname)
        return [
            Postconf(
                {
                    "myhostname": myhostname,
                    "mydomain": self.domain,
                    "myorigin": "$mydomain",
                    "mydestination": "$myhostname, localhost.$mydomain, localhost",
                }
            )
        ]

    def network(self) -> list[Resource]:
        return [Postconf({"inet_interfaces": "all", "mynetworks": "127.0.0.0/8 [::1]/128", "relayhost": ""})]

    def relay(self) -> list[Resource]:
        """Refuse relaying for strangers for good (554), instead of Debian's temporary 454 safety net."""
        return [
            Postconf(
                {"smtpd_relay_restrictions": "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"}
            )
        ]

    def limits(self) -> list[Resource]:
        return [Postconf({"mailbox_size_limit": "0", "recipient_delimiter": "+"})]

    @property
    def virtual_mailbox_domains(self) -> str:
        return " ".join(_relative(d, self.domain) for d in self.domains)

    def mailbox_map(self, templates: Templates | None = None) -> str:
        context = {"mailboxes": self.mailboxes, "layout": self.layout}
        return (templates or Templates()).render("postfix/vmailbox", context)

    def alias_map(self, templates: Templates | None = None) -> str:
        context = {"aliases": self.aliases, "layout": self.layout}
        return (templates or Templates()).render("postfix/virtual", context)

    def virtual(self) -> list[Resource]:
        """Virtual mailboxes under /var/vmail, owned by one vmail user, listed in two flat-file maps."""
        lay = self.layout
        return [
            SystemAccount(lay.vmail_user, lay.vmail_user, lay.vmail_uid, lay.vmail_uid, lay.vmail_base),
            Directory(lay.vmail_base, lay.vmail_user, lay.vmail_user, 0o770),
            LookupTable(lay.mailbox_map, self.mailbox_map(), lay.map_type),
            LookupTable(lay.alias_map, self.alias_map(), lay.map_type),
            Postconf(
                {
                    "virtual_mailbox_domains": self.virtual_mailbox_domains,
                    "virtual_mailbox_base": lay.vmail_base,
                    "virtual_mailbox_maps": lay.map_ref(lay.mailbox_map),
                    "virtual_alias_maps": lay.map_ref(lay.alias_map),
                    "virtual_minimum_uid": str(lay.vmail_uid),
                    "virtual_uid_maps": f"static:{lay.vmail_uid}",
                    "virtual_gid_maps": f"static:{lay.vmail_uid}",
                    "virtual_mailbox_limit": "0",
                }
            ),
        ]

    def everything(self) -> list[Resource]:
        """The whole of part 1, in the article's order (what "apply again" re-applies)."""
        return [
            *self.install(),
            *self.identity(),
            *self.network(),
            *self.limits(),
            *self.relay(),
            *self.virtual(),
        ]

    def settings(self) -> set[str]:
        """Every main.cf setting part 1 writes (each must be explained in the notebook)."""
        return {key for r in self.everything() if isinstance(r, Postconf) for key in r.settings}

    def maildir(self, address: str) -> str:
        return self.layout.maildir(EmailAddress(address))

    # -- checks -----------------------------------------------------------------------------------
    def relay_checks(self, outside: Connection) -> list[CheckResult]:
        """Every classic relay trick, tried from the outside host, must be refused for good (Postfix says 554)."""
        fix = (
            f"{GUIDE} section 7: smtpd_relay_restrictions must end in reject_unauth_destination; "
            "mynetworks only loopback"
        )
        results = []
        for label, mail_from, rcpt in relay_tricks(self.domain):
            seen = probe(outside, str(self.hostname), rcpt, mail_from=mail_from)
            reply = seen.reply("RCPT") or seen.reply("MAIL")
            verdict = rules.relay_refused(reply.code, reply.text) if reply else rules.Verdict(False, "no reply to RCPT")
            results.append(
                CheckResult("no open relay", f"{label}: RCPT TO:<{rcpt}> refused", verdict.ok, verdict.detail, fix)
            )
        return results

    def local_recipient_check(self, outside: Connection) -> CheckResult:
        """A user that does not exist at $myhostname is refused by the local recipient table."""
        return check_refused(
            outside,
            str(self.hostname),
            "unknown local user",
            f"no-such-user@{self.hostname}",
            code=550,
            text="User unknown in local recipient table",
            group="refused",
            fix=f"{GUIDE} section 4: mydestination lists the domains delivered to local users",
        )

    def day_two_commands(self) -> list[list[str]]:
        """Where the first mailbox's and the first alias's mail goes (``postmap -q``), and the queue."""
        first = str(self.mailboxes[0])
        chosen = [a for a in map(EmailAddress, self.aliases) if a.local not in (*ROLE_ADDRESSES, "root")]
        chosen = chosen or list(map(EmailAddress, self.aliases))
        alias = chosen[0] if chosen else None
        commands = [["postmap", "-q", first, LAYOUT.map_ref(LAYOUT.mailbox_map)]]
        if alias is not None:
            commands.append(["postmap", "-q", str(alias), LAYOUT.map_ref(LAYOUT.alias_map)])
        return [*commands, ["postqueue", "-p"]]

    def route_checks(self, mail: Connection, outside: Connection) -> list[CheckResult]:
        """Mail as the internet sends it: the domain's MX looked up from outside, then one message over IPv4 and
        one over IPv6 to that name, so a wrong MX, A or AAAA record fails here instead of passing unseen."""
        fix = f"{GUIDE} section 10: publish 'MX 10 {self.hostname}.' for {self.domain} and A/AAAA records for it"
        answer = outside.run(["dig", "+short", "MX", str(self.domain)], check=False).stdout.splitlines()
        seen = rules.exchanger(answer, str(self.hostname))
        results = [CheckResult("route", f"MX of {self.domain}", seen.ok, seen.detail, fix)]
        if not rules.exchangers(answer):
            return results
        best = rules.exchangers(answer)[0]
        first = self.mailboxes[0]
        for family, rtype in ((4, "A"), (6, "AAAA")):
            found = outside.run(["dig", "+short", rtype, best], check=False).stdout.split()
            addresses = [a for a in found if (":" in a) == (family == 6) and not a.endswith(".")]  # not CNAMEs
            if not addresses:
                note = "IPv6 not offered" if family == 6 else "unreachable over IPv4"
                results.append(
                    CheckResult("route", f"{best} over IPv{family}", family == 6, f"no {rtype} record: {note}", fix)
                )
                continue
            label = f"via MX {best} over IPv{family} ({', '.join(sorted(addresses))})"
            try:
                results.append(
                    check_delivered(outside, mail, best, str(first), self.maildir(first), group="route", label=label,
                                    fix=f"{fix}; on the server, inet_protocols = all", family=family)
                )  # fmt: skip
            except MailkitError as exc:  # the outside host cannot test this family: a failed row, not a crash
                need = " (swaks -6 needs libio-socket-inet6-perl on older Debian)" if family == 6 else ""
                results.append(CheckResult("route", label, False, str(exc), f"on the outside host{need}"))
        return results

    def verify(self, mail: Connection, outside: Connection) -> list[CheckResult]:
        """Everything part 1 promises, checked from the outside host with real SMTP."""
        server = str(self.hostname)
        results = [check_postfix_config(mail), *self.route_checks(mail, outside)]
        first = EmailAddress(self.mailboxes[0])
        chosen = [a for a in map(EmailAddress, self.aliases) if a.local not in (*ROLE_ADDRESSES, "root")]
        chosen = chosen or list(map(EmailAddress, self.aliases))
        alias, target = chosen[0], self.aliases[chosen[0]][0]
        tagged = f"{first.local}+tag@{first.domain}"
        deliveries = [
            (m, m, f"to mailbox {m}", f"{GUIDE} section 9: the address must be in {MAILBOX_MAP} (then postmap)")
            for m in self.mailboxes
        ]
        roles = [EmailAddress(f"{role}@{self.domain}") for role in rules.REQUIRED_ROLES]
        deliveries += [
            (role, self.aliases[role][0], f"to {role} (RFC 2142) -> {self.aliases[role][0]}",
             f"{GUIDE} section 9: every domain needs postmaster@ and abuse@ (ALIASES)")
            for role in roles if role in self.aliases
        ]  # fmt: skip
        deliveries += [
            (alias, target, f"to alias {alias} -> {target}", f"{GUIDE} section 9: the alias must be in {ALIAS_MAP}"),
            (tagged, first, f"to {tagged} (recipient_delimiter)", f"{GUIDE} section 6: recipient_delimiter = +"),
        ]
        for rcpt, owner, label, fix in deliveries:
            maildir = self.maildir(owner)
            results.append(
                check_delivered(outside, mail, server, rcpt, maildir, group="delivery", label=label, fix=fix)
            )
        unknown = f"no-such-user@{self.domain}"
        results.append(
            check_refused(
                outside,
                server,
                "unknown user",
                unknown,
                code=550,
                text="User unknown in virtual mailbox table",
                group="refused",
                fix=f"{GUIDE} section 9: virtual_mailbox_maps decides who exists",
            )
        )
        results.append(self.local_root_check(mail))
        results += self.relay_checks(outside)
        return results

    def require_applied(self, mail: Connection) -> str:
        """Say so if part 1 is applied on the server as these parameters describe it; raise if it is not."""
        from mailkit.core.engine import plan

        pending = plan(mail, self.everything())
        if pending.changes:
            raise UsageError(
                f"part 1 is not applied on this server as these parameters describe it ({len(pending.changes)} "
                f"change(s) pending, e.g. {pending.changes[0].summary}): run {GUIDE} first, with the same parameters"
            )
        return "part 1 is applied: nothing of it to change"

    def local_root_check(self, mail: Connection) -> CheckResult:
        """Mail the server sends to plain ``root`` (cron, apt) reaches the mailbox root@DOMAIN is an alias of."""
        token = secrets.token_hex(8)
        target = self.aliases.get(EmailAddress(f"root@{self.domain}"), (self.mailboxes[0],))[0]
        send_local_mail(mail, "root", f"mailkit check {token}")
        found = find_in_maildir(mail, self.maildir(target), f"mailkit check {token}")
        return CheckResult(
            "delivery",
            f"mail to plain root on the server (cron, apt) -> {target}",
            bool(found),
            f"in {found.rsplit('/', 1)[0]}" if found else "not delivered: look at \"journalctl -u 'postfix*'\"",
            f"{GUIDE} section 9: root@{self.domain} must be an alias ($myorigin makes root into root@{self.domain})",
        )


def check_postfix_config(mail: Connection) -> CheckResult:
    check = mail.run(["postfix", "check"], check=False, pty=True)
    output = check.stdout.strip()
    return CheckResult(
        "config",
        "postfix check",
        check.ok and not output,
        output or "clean",
        f"{GUIDE}: read the message above; the setting it names is explained in the guide",
    )


# -- the mail command and the mailbox it fills ------------------------------------------------------
def send_local_mail(mail: Connection, to: str, subject: str, body: str = "Hello from mailkit.\n") -> None:
    """Send a message on the server itself with the `mail` command (as the article does)."""
    mail.run(["mail", "-s", subject, to], input=body)


def mbox_messages(mail: Connection, path: str, subject: str) -> list[EmailMessage]:
    """The messages with ``subject`` in an mbox file, oldest first (none if the file does not exist)."""
    if not mail.run(["test", "-f", path], check=False).ok:
        return []
    found = []
    for chunk in mail.read(path).split(b"\nFrom "):
        message = email.message_from_bytes(chunk.split(b"\n", 1)[-1], policy=email.policy.default)
        if message.get("Subject") == subject:
            found.append(message)
    return found


def local_test_message(mail: Connection, to: str, subject: str, mbox: str, timeout: float = 15) -> EmailMessage:
    """Send a test message on the server with `mail`, and return it once it is in ``mbox``.

    It waits for a *new* message: one with the same subject from an earlier run does not count.
    """
    before = len(mbox_messages(mail, mbox, subject))
    send_local_mail(mail, to, subject)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = mbox_messages(mail, mbox, subject)
        if len(found) > before:
            return found[-1]
        time.sleep(0.2)
    raise MailkitError(f"no new message with subject {subject!r} in {mbox} after {timeout:.0f} s")


def headers(message: EmailMessage, names: Sequence[str] = ("From", "To", "Subject")) -> str:
    return "\n".join(f"{name}: {message.get(name)}" for name in names)
