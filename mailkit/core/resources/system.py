"""Debian system resources: packages (installed or purged) and system accounts.

>>> Packages(["postfix"], preseed=["postfix postfix/main_mailer_type select Internet Site"]).names
('postfix',)
>>> needs_update(None), needs_update((60, True)), needs_update((60, False))
(True, True, False)
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailkit.core.errors import CommandError, MailkitError, UsageError
from mailkit.core.facts import Account, AptLists, Fact, Group, PackageVersion
from mailkit.core.progress import LiveStatus, Progress
from mailkit.core.resources.base import Change, Resource, Script, account_name
from mailkit.core.values import RemotePath, ValueRejected

if TYPE_CHECKING:
    from mailkit.core.ssh import Connection

#: apt's lists older than this are refreshed before an install: Debian's archive and its security
#: archive publish several times a day, and an install from old lists asks the mirror for versions it
#: may already have deleted (404). Sources changed after the last update always refresh them.
APT_LISTS_MAX_AGE = 6 * 3600
_DEBCONF_LINE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:$ ,'")
_PACKAGE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789+-.")


def needs_update(lists: tuple[int, bool] | None) -> bool:
    """Refresh apt's lists when there are none, a source changed after them, or they are old."""
    return lists is None or lists[1] or lists[0] > APT_LISTS_MAX_AGE


_APT = r"""
set -eu
export DEBIAN_FRONTEND=noninteractive
if [ -n "$1" ]; then printf '%s\n' "$1" | debconf-set-selections; fi
action=$2 update=$3
shift 3
if [ "$update" = yes ]; then apt-get -q -o DPkg::Lock::Timeout=120 update; fi
apt-get -q -y -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "$action" "$@"
"""


@dataclass(frozen=True)
class Packages(Resource):
    """Debian packages, installed noninteractively (``preseed`` lines go to debconf first), or purged.

    A purge removes the packages' own config files too, so a later install starts from Debian's.
    """

    names: tuple[str, ...]
    preseed: tuple[str, ...] = ()
    present: bool = True

    def __post_init__(self) -> None:
        names = tuple(self.names)
        for name in names:
            if not name or not set(name) <= _PACKAGE_CHARS or name[0] in "-.+":
                raise ValueRejected("package", name, "is not a Debian package name")
        for line in self.preseed:
            if not set(line) <= _DEBCONF_LINE or len(line.split()) < 3:
                raise ValueRejected("preseed", line, "is not a 'package question type value' debconf line")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "preseed", tuple(self.preseed))

    def facts(self) -> list[Fact[Any]]:
        return [AptLists(), *(PackageVersion(name) for name in self.names)]

    def compare(self, values: list[Any]) -> Change | None:
        lists, versions = values[0], values[1:]
        installed = {n for n, v in zip(self.names, versions, strict=True) if v is not None}
        todo = tuple(n for n in self.names if (n in installed) != self.present)
        if not todo:
            return None
        verb, sign = ("install", "+") if self.present else ("purge", "-")
        update = self.present and needs_update(lists)

        def run(conn: Connection, progress: Progress | None) -> None:
            self._apt(conn, "install" if self.present else "purge", todo, update, progress)

        diff = "".join(f"{sign} package {name}\n" for name in todo)
        return Change(self, f"{verb} {' '.join(todo)}", diff, run=run, by_hand=self.by_hand(todo))

    def by_hand(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """The answers to debconf's questions first (so the install asks none), then apt-get: by hand, always
        after ``apt-get update`` (the apply skips it when the lists are fresh; a person cannot tell).

        >>> print("\\n".join(Packages(["postfix"], ["postfix postfix/mailname string mail.example.org"]).by_hand(
        ...     ("postfix",))))
        debconf-set-selections <<'EOF'
        postfix postfix/mailname string mail.example.org
        EOF
        apt-get update
        apt-get install postfix
        """
        typed = ["debconf-set-selections <<'EOF'\n" + "\n".join(self.preseed) + "\nEOF"] if self.preseed else []
        typed += ["apt-get update"] if self.present else []
        return (*typed, shlex.join(["apt-get", "install" if self.present else "purge", *names]))

    def _apt(
        self, conn: Connection, action: str, names: tuple[str, ...], update: bool, progress: Progress | None
    ) -> None:
        words = " ".join(names)
        doing, done = ("installing", "installed") if action == "install" else ("purging", "purged")
        if progress:
            progress(f"{doing} {words}")
        argv = ["sh", "-c", _APT, "sh", "\n".join(self.preseed), action, "yes" if update else "no", *names]
        try:
            with LiveStatus(f"{doing} {words}", f"{done} {words}") as status:
                conn.run(argv, on_output=progress or status, timeout=1800)
        except CommandError as exc:
            tail = "\n".join((exc.result.stdout + exc.result.stderr).strip().splitlines()[-12:])
            raise MailkitError(f"apt-get could not {action} {words}:\n{tail}") from None


@dataclass(frozen=True)
class SystemAccount(Resource):
    """A system user and its group with fixed ids (e.g. vmail 5000:5000), created if missing.

    An existing account with other ids is an error: changing ids would orphan files.
    """

    user: str
    group: str
    uid: int
    gid: int
    home: str
    shell: str = "/usr/sbin/nologin"

    def __post_init__(self) -> None:
        account_name(self.user, "user")
        account_name(self.group, "group")
        object.__setattr__(self, "home", RemotePath(self.home, field="home"))
        object.__setattr__(self, "shell", RemotePath(self.shell, field="shell"))
        for name in ("uid", "gid"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 100 <= value < 60000:
                raise ValueRejected(name, value, "must be a number from 100 to 59999")

    def facts(self) -> list[Fact[Any]]:
        return [Account(self.user), Group(self.group)]

    def compare(self, values: list[Any]) -> Change | None:
        account, gid = values
        if gid is not None and gid != self.gid:
            raise UsageError(f"group {self.group} exists with gid {gid}, not {self.gid}: fix it by hand")
        if account is not None and account[:2] != (self.uid, self.gid):
            raise UsageError(f"user {self.user} exists as {account[0]}:{account[1]}, not {self.uid}:{self.gid}")
        if account is not None and gid is not None:
            return None
        parts = ([] if gid is not None else [f"+ group {self.group} ({self.gid})\n"]) + (
            [] if account is not None else [f"+ user {self.user} ({self.uid}:{self.gid}, home {self.home})\n"]
        )
        typed = ([] if gid is not None else [self._groupadd()]) + ([] if account is not None else [self._useradd()])
        return Change(
            self, f"create account {self.user}:{self.group}", "".join(parts), script=self.script, by_hand=tuple(typed)
        )

    def _groupadd(self) -> str:
        return shlex.join(["groupadd", "--system", "--gid", str(self.gid), self.group])

    def _useradd(self) -> str:
        return shlex.join(["useradd", "--system", "--uid", str(self.uid), "--gid", str(self.gid), "--home-dir",
                           self.home, "--no-create-home", "--shell", self.shell, self.user])  # fmt: skip

    def script(self, ref: str) -> Script:
        q = shlex.quote
        stage = (
            f"getent group {q(self.group)} >/dev/null || {self._groupadd()}\n"
            f"getent passwd {q(self.user)} >/dev/null || {self._useradd()}\n"
        )
        return Script(stage=stage)
