"""Upgrading a finished mail server in place, bookworm to trixie (notebook ``05-upgrade.ipynb``).

The steps a careful admin takes, each one a function: take stock of the mail (so nothing lost can go unseen),
switch the apt sources (shown as a diff, applied like any file), ``full-upgrade`` keeping our configuration files,
see what broke, re-render what the new versions need (Dovecot 2.4's language), raise Postfix's compatibility
level, and check everything again.

>>> switched("deb http://deb.debian.org/debian bookworm main\\n", "bookworm", "trixie")
'deb http://deb.debian.org/debian trixie main\\n'
>>> switched("deb http://security.debian.org/debian-security bookworm-security main\\n", "bookworm", "trixie")
'deb http://security.debian.org/debian-security trixie-security main\\n'
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

from mailkit.core.checks import CheckResult
from mailkit.core.context import HostFacts
from mailkit.core.errors import MailkitError
from mailkit.core.facts import Runner
from mailkit.core.resources import File, Resource
from mailkit.core.ssh import Connection
from mailkit.core.values import LocalPart

GUIDE = "05-upgrade.ipynb"
#: Where apt's sources live on Debian (one-line .list files and deb822 .sources files).
SOURCES = ("/etc/apt/sources.list", "/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list.d/*.sources")
#: Keep the configuration files mailkit wrote (--force-confold) and take the package's version of untouched ones
#: (--force-confdef): what an admin answers at each dpkg prompt, without the prompts.
UPGRADE = (
    "export DEBIAN_FRONTEND=noninteractive; apt-get update -q && "
    "apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold full-upgrade"
)


def switched(text: str, old: str, new: str) -> str:
    """The sources text with release ``old`` replaced by ``new`` as a whole word (``bookworm-updates`` too)."""
    return re.sub(rf"\b{re.escape(old)}\b", new, text)


def source_files(conn: Runner, old: str, new: str) -> list[Resource]:
    """Each apt sources file that names ``old``, as a File resource naming ``new`` instead (plan shows the diff)."""
    LocalPart(old, field="release")  # a plain word: it goes into a regular expression and a file
    LocalPart(new, field="release")
    listing = conn.run(["sh", "-c", "ls -1 " + " ".join(SOURCES) + " 2>/dev/null || true"]).stdout.split()
    resources: list[Resource] = []
    for path in listing:
        text = conn.run(["cat", path]).stdout
        if re.search(rf"\b{re.escape(old)}\b", text):
            resources.append(File(path, switched(text, old, new)))
    if not resources:
        raise MailkitError(f"no apt source names {old}: is this server already upgraded?")
    return resources


@dataclass(frozen=True)
class Upgrade:
    """How ``full-upgrade`` ended: the packages dpkg could not configure (their post-installation script failed)."""

    failed: tuple[str, ...]
    tail: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed

    def __repr__(self) -> str:
        if self.ok:
            return "apt finished: every package is upgraded and configured"
        return (
            f"apt stopped: {', '.join(self.failed)} could not be configured (its post-installation script failed); "
            "the packages that depend on it wait, unconfigured"
        )


def failed_packages(output: str) -> tuple[str, ...]:
    """The packages apt lists after "Errors were encountered while processing:".

    >>> failed_packages("x\\nErrors were encountered while processing:\\n dovecot-core\\nE: Sub-process")
    ('dovecot-core',)
    """
    lines = output.splitlines()
    if "Errors were encountered while processing:" not in lines:
        return ()
    rest = lines[lines.index("Errors were encountered while processing:") + 1 :]
    found = []
    for line in rest:
        if not line.startswith(" "):
            break
        found.append(line.strip())
    return tuple(found)


def full_upgrade(conn: Connection) -> Upgrade:
    """``apt-get full-upgrade`` to the switched sources; an error only when apt failed for another reason."""
    result = conn.run(["sh", "-c", UPGRADE], check=False, timeout=3600)
    output = result.stdout + result.stderr
    tail = "\n".join(output.strip().splitlines()[-6:])
    failed = failed_packages(output)
    if result.exited != 0 and not failed:
        raise MailkitError(f"the upgrade stopped (exit {result.exited}); its last lines:\n{tail}")
    return Upgrade(failed, tail)


#: trixie runs Postfix as postfix.service; bookworm ran the master under postfix@-.service, and after the upgrade
#: bookworm's master (3.7) still runs there, beside 3.10's programs. The old instance is stopped, then the new unit
#: started (a plain restart is refused: the new unit conflicts with the old one).
#: bookworm's Postfix master (under ``postfix@-``) stopped, then trixie's unit started: a restart through the new
#: unit alone is refused while the old instance runs.
RESTART_POSTFIX_STEPS = (
    "systemctl stop postfix@-.service",
    "systemctl reset-failed postfix@-.service 2>/dev/null",
    "systemctl restart postfix.service",
)
RESTART_POSTFIX = "; ".join(RESTART_POSTFIX_STEPS)


def finish_by_hand() -> list[str]:
    """What :func:`finish` does, as typed on your own server (apt asks its questions there; keep your files).

    >>> finish_by_hand()[0]
    'dpkg --configure -a'
    """
    return ["dpkg --configure -a", "apt-get update", "apt-get full-upgrade   # keep your files when it asks",
            *RESTART_POSTFIX_STEPS]  # fmt: skip


def finish(conn: Connection) -> Upgrade:
    """Configure what waited (``dpkg --configure -a``), let apt finish what it had left, restart Postfix once."""
    script = f"dpkg --configure -a 2>&1; {UPGRADE} && {RESTART_POSTFIX}"
    result = conn.run(["sh", "-c", script], check=False, timeout=3600)
    output = result.stdout + result.stderr
    upgrade = Upgrade(failed_packages(output), "\n".join(output.strip().splitlines()[-6:]))
    if result.exited != 0 and upgrade.ok:
        raise MailkitError(f"apt could not finish (exit {result.exited}):\n{upgrade.tail}")
    return upgrade


def facts_on_disk(conn: Runner) -> HostFacts:
    """The versions whose programs are on disk, configured or not: after a stopped upgrade, dovecot-core 2.4 is
    unpacked but not configured, and its configuration must be written in 2.4's language all the same."""
    script = (
        ". /etc/os-release && echo $VERSION_CODENAME; "
        "for p in postfix dovecot-core redis-server; do "
        "v=$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}' $p 2>/dev/null); "
        'case "$v" in i*) echo "${v#* }" ;; *) echo - ;; esac; done'
    )
    release, postfix, dovecot, redis = (conn.run(["sh", "-c", script]).stdout.split() + ["-"] * 4)[:4]
    present = [None if v == "-" else v for v in (postfix, dovecot, redis)]
    return HostFacts(release, present[0], present[1], present[2])


def dovecot_config(part4: Any, facts: HostFacts) -> list[Resource]:
    """dovecot.conf alone, as the whole guide wants it (with part 4's Sieve), in the language of ``facts``."""
    from mailkit.guide.part2 import DOVECOT_CONF

    return [r for r in part4.sieve(facts) if getattr(r, "path", None) == DOVECOT_CONF]


@dataclass(frozen=True)
class Inventory:
    """Every message in every mailbox, by content: ``{mailbox: sorted sha256 of each message file}``.

    A message moves from ``new/`` to ``cur/`` and its file name gains flags when read, so files are compared by
    content, not by name.
    """

    messages: dict[str, tuple[str, ...]]

    def count(self) -> int:
        return sum(len(v) for v in self.messages.values())

    def missing_from(self, later: Inventory) -> list[str]:
        """Messages here that ``later`` no longer has (``mailbox: hash``); mail that arrived since is not counted."""
        gone = []
        for mailbox, hashes in self.messages.items():
            left = list(later.messages.get(mailbox, ()))
            for digest in hashes:
                if digest in left:
                    left.remove(digest)
                else:
                    gone.append(f"{mailbox}: {digest[:12]}")
        return gone

    def __repr__(self) -> str:
        per = ", ".join(f"{m} {len(h)}" for m, h in sorted(self.messages.items()))
        return f"{self.count()} messages ({per})"


def take_stock(conn: Runner, maildirs: dict[str, str]) -> Inventory:
    """Hash every message file of each Maildir (INBOX and its folders) on the server, in one command each."""
    found = {}
    for mailbox, maildir in maildirs.items():
        script = f"cd {shlex.quote(maildir)} && find . -type f -path '*/cur/*' -o -type f -path '*/new/*' | "
        script += "sort | xargs -r sha256sum | cut -d' ' -f1 | sort"
        found[mailbox] = tuple(conn.run(["sh", "-c", script]).stdout.split())
    return Inventory(found)


def nothing_lost(before: Inventory, after: Inventory) -> CheckResult:
    gone = before.missing_from(after)
    detail = f"all {before.count()} messages from before are there" if not gone else f"missing: {', '.join(gone[:5])}"
    return CheckResult("upgrade", "mail from before the upgrade", not gone, detail, f"{GUIDE} section 1: the backup")


def service_states(conn: Runner, services: list[str]) -> dict[str, str]:
    """``systemctl is-active`` of each service (``active``, ``failed``...)."""
    argv = ["systemctl", "is-active", *services]
    states = conn.run(argv, check=False).stdout.split()
    return dict(zip(services, states, strict=False))


def require_release(conn: Runner, release: str) -> str:
    """The server must run ``release`` (this notebook upgrades from it); a clear error otherwise."""
    seen = conn.run(["sh", "-c", ". /etc/os-release && echo $VERSION_CODENAME"]).stdout.strip()
    if seen != release:
        lab = "in the lab: mailkit lab down && mailkit lab up --release bookworm" if release == "bookworm" else ""
        raise MailkitError(
            f"this server runs {seen or 'an unknown release'}, not {release}" + (f" ({lab})" if lab else "")
        )
    return f"the server runs Debian {seen}: ready to upgrade"


def packaged_compatibility_level(conn: Runner) -> str:
    """The compatibility_level Debian's Postfix writes into a new install's main.cf (3.9 on trixie)."""
    found = conn.run(["sed", "-n", "s/^compatibility_level *= *//p", "/usr/share/postfix/main.cf.debian"]).stdout
    level = found.split()[0] if found.split() else ""
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)*", level):
        raise MailkitError(f"cannot read the packaged compatibility_level (found {level!r})")
    return level


def final_state(part1: Any, part2: Any, part3: Any, part4: Any, facts: Any, chain: Any, key: Any) -> list[Resource]:
    """The whole guide as one desired state, for this host's versions: parts 1 to 4, with dovecot.conf as part 4
    writes it (part 2's version without Sieve would otherwise come first and be replaced in the same apply)."""
    from mailkit.guide.part2 import DOVECOT_CONF

    second = [r for r in part2.everything(facts, chain, key) if getattr(r, "path", None) != DOVECOT_CONF]
    return [*part1.everything(), *second, *part3.everything(), *part4.everything(facts)]


def send_now(outside: Connection, part1: Any) -> tuple[str, CheckResult]:
    """A message to the first mailbox while Dovecot is down: Postfix must take it (250) and keep it queued."""
    import secrets

    from mailkit.clients.smtp import probe

    subject = f"sent during the upgrade {secrets.token_hex(6)}"
    sent = probe(outside, str(part1.hostname), str(part1.mailboxes[0]), quit_after=None, subject=subject)
    reply = sent.reply("DATA-END")
    ok = reply is not None and reply.code == 250
    return subject, CheckResult("upgrade", "mail sent while Dovecot is down is taken", ok, str(reply or "no reply"))


def delivered_later(mail: Connection, part1: Any, subject: str) -> CheckResult:
    """The queued message reaches the mailbox once Dovecot runs again (the queue is flushed to skip the wait)."""
    from mailkit.clients.smtp import find_in_maildir

    mail.run(["postqueue", "-f"])
    found = find_in_maildir(mail, part1.maildir(part1.mailboxes[0]), subject, timeout=60)
    detail = "delivered from the queue" if found else "still not in the mailbox: postqueue -p says why"
    return CheckResult("upgrade", "mail sent while Dovecot was down", bool(found), detail, f"{GUIDE} section 5")
