"""Part 4 of the guide, "Avoiding spam in your e-mail": postscreen, a block list, cheap SMTP restrictions,
rspamd as the content filter, Sieve filing spam into Junk, and learning from what users move over IMAP.

Each layer is a section of ``04-spam-inbound.ipynb``; :mod:`mailkit.guide.part4_checks` proves each one
from the outside host.

>>> from mailkit.guide.part1 import Part1
>>> part4 = Part4(Part3(Part1()), Part2(Part1()))
>>> part4.postscreen()[-1].settings["postscreen_dnsbl_sites"]
'bl.example.net*3'
>>> redis_package("bookworm"), redis_package("trixie")
('redis-server', 'valkey-server')
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

from mailkit.core.context import HostFacts
from mailkit.core.display import SideBySide
from mailkit.core.resources import (
    Directory,
    File,
    GeneratedSecret,
    MasterService,
    Packages,
    Postconf,
    Resource,
    SieveScript,
)
from mailkit.core.templates import Templates
from mailkit.core.values import Domain, ValueRejected
from mailkit.guide.part2 import RELEASE_FACTS, Part2
from mailkit.guide.part3 import RSPAMD_USER, Part3

GUIDE = "04-spam-inbound.ipynb"
RSPAMD_LOCAL = "/etc/rspamd/local.d"
RSPAMD_OVERRIDE = "/etc/rspamd/override.d"
#: The controller's password hash, made on the server (the web UI's password: set your own with rspamadm pw).
CONTROLLER_PASSWORD = f"{RSPAMD_LOCAL}/controller-password.inc"
CONTROLLER_PORT = 11334
#: Learning goes through the controller's Unix socket, in a directory only rspamd and the mail user enter.
LEARN_DIR = "/var/lib/rspamd-learn"
LEARN_SOCKET = f"{LEARN_DIR}/controller.sock"
REDIS_SERVER = "127.0.0.1:6379"
SIEVE_DIR = "/etc/dovecot/sieve"
#: Programs global Sieve scripts may pipe a message to (vnd.dovecot.pipe), and the one part 4 installs.
PIPE_DIR = "/usr/local/lib/dovecot/sieve-pipe"
LEARN_PROGRAM = "rspamd-learn"
MANAGESIEVE_PORT = 4190
#: Where the Sieve part starts in dovecot.conf (templates/dovecot/dovecot.conf.j2).
SIEVE_SECTION = "# --- Sieve filters"
#: The global scripts: filing spam at delivery, and learning from IMAP copies into and out of Junk.
SIEVE_SCRIPTS = {"after": "spam-to-junk.sieve", "learn_spam": "learn-spam.sieve", "learn_ham": "learn-ham.sieve"}
#: What the learning scripts need (``sievec -P``/``-x``) beyond Sieve's defaults.
LEARN_PLUGINS = ("sieve_imapsieve", "sieve_extprograms")
LEARN_EXTENSIONS = ("vnd.dovecot.pipe", "imapsieve")
#: postscreen's pieces in master.cf: it takes port 25, then passes clients it lets in to a real smtpd.
POSTSCREEN_SERVICES = ("smtp/inet", "smtpd/pass", "dnsblog/unix", "tlsproxy/unix")
#: ``rspamadm pw`` reads a password only from a terminal (or from its argv, which every local account can
#: see in ``ps``): it gets one from ``script``, and the password is written to that terminal once it asks.
#: The password is random and thrown away at once (the admin sets their own): only its hash is kept.
HASH_ON_A_TERMINAL = r"""pw=$(openssl rand -hex 24)
coproc RSPAMADM { script -qec "rspamadm pw -q" /dev/null; }
exec {from}<&"${RSPAMADM[0]}" {to}>&"${RSPAMADM[1]}"
IFS= read -r -d : -t 20 prompt <&"$from"
printf '%s\n' "$pw" >&"$to"
unset pw
timeout 20 cat <&"$from" | tr -d '\r' | grep -m1 '^\$'
"""
_PASSWORD_RECIPE = (
    f'printf \'password = "%s";\\n\' "$(bash -c {shlex.quote(HASH_ON_A_TERMINAL)})" > "$out"\n'
    'grep -q \'^password = "\\$\' "$out"'
)
_BLOCKLIST_SITE = re.compile(r"(?P<zone>[^*=]+)(?:=(?P<answer>[0-9.;\[\]]+))?(?:\*(?P<weight>-?[0-9]+))?")


def redis_package(release: str) -> str:
    """Bayes' store: Redis in bookworm and before, Valkey (its community fork, same protocol) from trixie."""
    return "redis-server" if release in ("bullseye", "bookworm") else "valkey-server"


def store_package(facts: HostFacts) -> str:
    """The store this host uses: the Redis it has (a server upgraded from bookworm keeps what it learned), else
    its release's choice. Never both: they would fight over port 6379.

    >>> store_package(HostFacts("trixie", None, None)), store_package(HostFacts("trixie", None, None, "5:7.0.15-1"))
    ('valkey-server', 'redis-server')
    """
    return "redis-server" if facts.redis_version else redis_package(facts.release)


def blocklist_site(site: str) -> str:
    """A ``postscreen_dnsbl_sites`` entry, checked: ``zone[=answer]*weight``, answers as Postfix writes them.

    >>> blocklist_site("zen.spamhaus.org=127.0.0.[2..11]*3")
    'zen.spamhaus.org=127.0.0.[2..11]*3'
    >>> blocklist_site("bl.example.net*x")
    Traceback (most recent call last):
    ...
    mailkit.core.values.ValueRejected: BLOCKLISTS: 'bl.example.net*x' is not zone[=address]*weight
    """
    match = _BLOCKLIST_SITE.fullmatch(site)
    if not match:
        raise ValueRejected("BLOCKLISTS", site, "is not zone[=address]*weight")
    Domain(match["zone"], field="BLOCKLISTS")
    return site


@dataclass(frozen=True)
class Part4:
    """Part 4's state, on parts 1-3. ``blocklists`` are postscreen's DNS lists with weights; mail from a
    client whose weights add up to ``dnsbl_threshold`` is refused."""

    part3: Part3
    part2: Part2
    blocklists: tuple[str, ...] = ("bl.example.net*3",)
    dnsbl_threshold: int = 3
    junk_score: float = 6
    reject_score: float = 15
    greylisting: bool = False
    greylist_score: float = 4
    #: How long a greylisted sender must wait before its retry is accepted (rspamd's ``timeout``).
    greylist_delay: str = "5min"
    offline: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocklists", tuple(blocklist_site(s) for s in self.blocklists))
        if not 0 < self.junk_score < self.reject_score:
            raise ValueRejected("JUNK_SCORE", self.junk_score, f"must be above 0 and below {self.reject_score}")
        if not re.fullmatch(r"[1-9][0-9]*(s|min|h)", self.greylist_delay):
            raise ValueRejected("GREYLIST_DELAY", self.greylist_delay, "is not a duration like 30s, 5min or 1h")
        if self.dnsbl_threshold < 1:
            raise ValueRejected("DNSBL_THRESHOLD", self.dnsbl_threshold, "must be 1 or more")

    @property
    def hostname(self) -> str:
        return self.part3.part1.hostname

    # -- what each section applies -------------------------------------------------------------
    def install(self, facts: HostFacts) -> list[Resource]:
        return [Packages(("dovecot-sieve", "dovecot-managesieved", store_package(facts)))]

    def postscreen(self) -> list[Resource]:
        """postscreen on port 25: the pregreet test and the block lists, before any smtpd process."""
        return [
            MasterService("smtp", "inet", "postscreen", chroot="y", maxproc="1"),
            MasterService("smtpd", "pass", "smtpd", private="-", chroot="y"),
            MasterService("dnsblog", "unix", "dnsblog", private="-", chroot="y", maxproc="0"),
            MasterService("tlsproxy", "unix", "tlsproxy", private="-", chroot="y", maxproc="0"),
            Postconf(
                {
                    "postscreen_access_list": "permit_mynetworks",
                    "postscreen_greet_action": "drop",
                    "postscreen_dnsbl_sites": ", ".join(self.blocklists) or None,
                    "postscreen_dnsbl_threshold": str(self.dnsbl_threshold),
                    "postscreen_dnsbl_action": "enforce",
                }
            ),
        ]

    def restrictions(self) -> list[Resource]:
        """Checks that cost nothing and refuse only what no real mail server sends."""
        return [
            Postconf(
                {
                    "smtpd_helo_required": "yes",
                    "smtpd_helo_restrictions": "permit_mynetworks, permit_sasl_authenticated, "
                    "reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname",
                    "smtpd_sender_restrictions": "permit_mynetworks, permit_sasl_authenticated, "
                    "reject_non_fqdn_sender, reject_unknown_sender_domain",
                    "smtpd_recipient_restrictions": "reject_non_fqdn_recipient, reject_unknown_recipient_domain",
                    "smtpd_data_restrictions": "reject_unauth_pipelining",
                }
            )
        ]

    def filter_config(self, facts: HostFacts) -> list[Resource]:
        """rspamd as the inbound filter: Redis/Valkey for Bayes, headers, actions, and a locked controller."""
        templates = Templates()
        context: dict[str, Any] = {
            "redis_server": REDIS_SERVER,
            "reject_score": self.reject_score,
            "junk_score": self.junk_score,
            "greylisting": self.greylisting,
            "greylist_score": self.greylist_score,
            "greylist_delay": self.greylist_delay,
            "controller_port": CONTROLLER_PORT,
            "learn_socket": LEARN_SOCKET,
            "password_file": CONTROLLER_PASSWORD,
        }

        def conf(name: str, folder: str = RSPAMD_LOCAL, present: bool = True) -> File:
            return File(
                f"{folder}/{name}", templates.render(f"rspamd/{name}", context), service="rspamd", present=present
            )

        return [
            conf("redis.conf"),
            conf("milter_headers.conf"),
            conf("actions.conf"),
            conf("greylist.conf"),
            conf("options.inc", present=self.offline),
            Directory(LEARN_DIR, owner=RSPAMD_USER, group=self.part3.part1.layout.vmail_user, mode=0o750),
            GeneratedSecret(
                CONTROLLER_PASSWORD,
                recipe=_PASSWORD_RECIPE,
                what="rspamd controller password hash",
                typed=(
                    "rspamadm pw   # asks for a password of your own, prints its hash",
                    f'editor {CONTROLLER_PASSWORD}   # one line: password = "<that hash>";',
                ),
                group=RSPAMD_USER,
                mode=0o640,
                service="rspamd",
            ),
            conf("worker-controller.inc", folder=RSPAMD_OVERRIDE),
        ]

    def sieve_paths(self) -> dict[str, str]:
        return {"global_dir": SIEVE_DIR, "pipe_dir": PIPE_DIR, **SIEVE_SCRIPTS}

    def sieve(self, facts: HostFacts) -> list[Resource]:
        """Global Sieve scripts (compiled), the learning program, and dovecot.conf with Sieve and ManageSieve."""
        templates = Templates()
        context = {"learn_program": LEARN_PROGRAM, "learn_socket": LEARN_SOCKET}

        def script(key: str, learn: bool) -> SieveScript:
            name = SIEVE_SCRIPTS[key]
            return SieveScript(
                f"{SIEVE_DIR}/{name}",
                templates.render(f"sieve/{name}", context),
                plugins=LEARN_PLUGINS if learn else (),
                extensions=LEARN_EXTENSIONS if learn else (),
            )

        program = templates.render(f"sieve/{LEARN_PROGRAM}.sh", context)
        return [
            Directory(SIEVE_DIR),
            script("after", learn=False),
            script("learn_spam", learn=True),
            script("learn_ham", learn=True),
            Directory(PIPE_DIR),
            File(f"{PIPE_DIR}/{LEARN_PROGRAM}", program, mode=0o755),
            *self.part2.dovecot(facts, self.sieve_paths()),
        ]

    def sieve_side_by_side(self) -> SideBySide:
        """The Sieve part of dovecot.conf as Dovecot 2.3 (bookworm) and 2.4 (trixie) want it."""
        (old, new) = RELEASE_FACTS

        def sieve_part(facts: HostFacts) -> str:
            text = self.part2.dovecot_config(facts, self.sieve_paths())
            return text[text.index(SIEVE_SECTION) :]

        return SideBySide(
            f"Dovecot {old.dovecot_major} ({old.release})",
            sieve_part(old),
            f"Dovecot {new.dovecot_major} ({new.release})",
            sieve_part(new),
        )

    def everything(self, facts: HostFacts) -> list[Resource]:
        return [
            *self.install(facts),
            *self.postscreen(),
            *self.restrictions(),
            *self.filter_config(facts),
            *self.sieve(facts),
        ]

    def settings(self) -> set[str]:
        """Every Postfix setting part 4 writes in main.cf."""
        return {k for r in [*self.postscreen(), *self.restrictions()] if isinstance(r, Postconf) for k in r.settings}
