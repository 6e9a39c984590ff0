"""Dovecot resources: the passwd-file of virtual users, with hashes made on the host.

A password given here is only used to make a *new* hash, on the server, by ``doveadm pw`` at apply
time: planning never hashes (a new salt would make plan and apply disagree), an existing user keeps
its hash and every extra field of its line (a suspended user stays suspended), and no hash is ever
shown.

>>> parse_passwd("alice@example.org:{SHA512-CRYPT}$6$x::::::nologin=y\\n")["alice@example.org"]
('{SHA512-CRYPT}$6$x', '::::::nologin=y')
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from mailkit.core.errors import StateConflict, UsageError
from mailkit.core.facts import Fact, FileInfo, FileState, PathInfo
from mailkit.core.mail_layout import LAYOUT
from mailkit.core.resources.base import (
    Change,
    Resource,
    Script,
    account_name,
    edit_by_hand,
    file_mode,
    heredoc,
    ownership_by_hand,
)
from mailkit.core.resources.files import File
from mailkit.core.values import EmailAddress, Password, RemotePath, ValueRejected

HEADER = "# Dovecot passwd-file: one address:hash line per mailbox. Written by mailkit; mode 0640, group dovecot.\n"
MADE_ON_HOST = "<new hash, made on the host>"
_SIEVE_NAME = re.compile(r"[a-z][a-z0-9._-]*")

# Checks a candidate passwd-file: every line is a comment or user:{SCHEME}hash[:fields].
_FORMAT_CHECK = (
    'awk -F: \'/^#/ || /^$/ {next} NF < 2 || $1 == "" || $2 !~ /^\\{[A-Z0-9.-]+\\}./ '
    '{bad = 1; print "line " NR ": not user:{SCHEME}hash"} END {exit bad}\''
)


def parse_passwd(text: str) -> dict[str, tuple[str, str]]:
    """``user -> (hash, extra fields)`` of a Dovecot passwd-file; extra keeps its leading ``:``."""
    entries = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            user, _, rest = line.partition(":")
            hashed, sep, extra = rest.partition(":")
            entries[user] = (hashed, sep + extra)
    return entries


@dataclass(frozen=True)
class PasswdUser:
    """One login of the passwd-file.

    ``password`` makes a hash when the user has none (or with ``reset``); ``new`` refuses a user that
    exists already (``mailkit mailbox add``), naming the command that changes a password instead.
    """

    name: str
    password: Password | None = field(default=None, repr=False)
    reset: bool = False
    new: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", EmailAddress(self.name, field="user"))
        if self.password is not None:
            object.__setattr__(self, "password", Password(self.password, field=f"password of {self.name}"))
        if self.reset and self.password is None:
            raise ValueRejected(f"password of {self.name}", "", "is needed to set a new one")


@dataclass(frozen=True)
class PasswdFile(Resource):
    """Dovecot's passwd-file. ``exclusive`` drops users not listed; else they are kept as they are."""

    users: tuple[PasswdUser, ...]
    path: str = LAYOUT.passwd_file
    remove: tuple[str, ...] = ()
    exclusive: bool = False
    scheme: str = LAYOUT.scheme
    owner: str = "root"
    group: str = "dovecot"
    mode: int = 0o640

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", RemotePath(self.path))
        object.__setattr__(self, "users", tuple(self.users))
        object.__setattr__(self, "remove", tuple(EmailAddress(u, field="user") for u in self.remove))
        if not self.scheme.replace("-", "").isalnum():
            raise ValueRejected("scheme", self.scheme, "is not a password scheme name")
        account_name(self.owner, "owner")
        account_name(self.group, "group")
        file_mode(self.mode)

    def facts(self) -> list[Fact[Any]]:
        return [FileInfo(self.path)]

    def compare(self, values: list[Any]) -> Change | None:
        current: FileState = values[0]
        existing = parse_passwd((current.content or b"").decode())
        listed = {u.name: u for u in self.users}
        lines: dict[str, str] = {}  # user -> literal line, or "" for a hash to make on the host
        for name, (hashed, extra) in existing.items():
            if name in self.remove or (self.exclusive and name not in listed):
                continue
            lines[name] = f"{name}:{hashed}{extra}"
        fresh: dict[str, tuple[Password, str]] = {}
        for user in self.users:
            if user.new and user.name in existing:
                raise StateConflict(
                    f"{user.name} exists already: to change its password, use 'mailkit mailbox passwd {user.name}'"
                )
            if user.name in existing and not user.reset:
                continue
            if user.password is None:
                raise UsageError(f"no password for the new mailbox {user.name}: give one in PASSWORDS")
            fresh[user.name] = (user.password, existing.get(user.name, ("", ""))[1])
            lines[user.name] = ""
        order = sorted(lines)
        shown = "".join(f"{n}:{{{self.scheme}}}{MADE_ON_HOST}{fresh[n][1]}\n" if n in fresh else "" for n in order)
        meta = (current.mode, current.owner, current.group) == (self.mode, self.owner, self.group)
        kept = HEADER + "".join(lines[n] + "\n" for n in order if n not in fresh)
        if not fresh and current.content == kept.encode() and meta:
            return None
        gone = sorted(set(existing) - set(lines))
        diff = (
            f"--- {self.path}\n+++ {self.path}\n"
            + "".join(f"-{n}:<redacted>\n" for n in gone)
            + ("".join(f"+{line}" for line in shown.splitlines(keepends=True)))
        )
        words = [f"{len(fresh)} new hash(es)"] if fresh else []
        words += [f"{len(gone)} user(s) removed"] if gone else []
        summary = f"{'update' if current.exists else 'create'} {self.path}" + (
            f" ({', '.join(words)})" if words else ""
        )
        # Dovecot re-reads a passwd-file whose mtime (in seconds) or size changed; a new hash of the same length
        # written within the same second would go unseen, so the change reloads Dovecot instead of relying on it.
        typed = [f"doveadm pw -s {shlex.quote(self.scheme)}   # asks for {n}'s password twice" for n in sorted(fresh)]
        if fresh or gone or current.content != kept.encode():
            typed.append(edit_by_hand(self.path) + (": each new hash on its address's line" if fresh else ""))
        if not meta:
            typed += ownership_by_hand(self.path, self.owner, self.group, self.mode)
        return Change(
            self, summary, diff, services=("dovecot",), script=lambda ref: self._script(ref, order, lines, fresh),
            by_hand=tuple(typed),
        )  # fmt: skip

    def _script(
        self, ref: str, order: list[str], lines: dict[str, str], fresh: dict[str, tuple[Password, str]]
    ) -> Script:
        q = shlex.quote
        out = [f"{ref}=$(candidate {q(self.path)})", f"printf '%s' {q(HEADER)} > \"${ref}\""]
        for name in order:
            if name not in fresh:
                out.append(f"printf '%s\\n' {q(lines[name])} >> \"${ref}\"")
                continue
            password, extra = fresh[name]
            secret = f"{password.reveal()}\n".encode()
            # The password travels inside the verified script (in RAM on the host, 0600) and reaches
            # doveadm on stdin; a shell variable and printf (a builtin) keep it out of every argv.
            out.append(f"pw=$(data {heredoc(secret).rstrip()}\n)")
            out.append(f'h=$(printf \'%s\\n%s\\n\' "$pw" "$pw" | doveadm pw -s {q(self.scheme)})')
            out.append("pw=")
            out.append(f'case "$h" in {{{q(self.scheme)}}}?*) ;; *) echo "doveadm pw failed" >&2; exit 1 ;; esac')
            out.append(f'printf \'%s:%s%s\\n\' {q(name)} "$h" {q(extra)} >> "${ref}"')
        out.append(f'own "${ref}" {q(self.owner)} {q(self.group)} {self.mode:o}')
        check = f'check {q(self.path)} {_FORMAT_CHECK} "${ref}"\n'
        return Script(
            backup=(self.path,), stage="\n".join(out) + "\n", check=check, commit=f'mv -f -- "${ref}" {q(self.path)}\n'
        )


@dataclass(frozen=True)
class SieveScript(File):
    """A global Sieve script, compiled by ``sievec`` before it goes live, its binary installed beside it.

    A script that does not compile never replaces the live one. The binary (``.svbin``) is made here
    because Dovecot runs global scripts as the mail user, who cannot write it under /etc. ``plugins``
    and ``extensions`` are what the script needs beyond the defaults (``sievec -P``/``-x``), so it
    compiles before the dovecot.conf that enables them is live.

    >>> SieveScript("/etc/dovecot/sieve/junk.sieve", "keep;\\n").binary
    '/etc/dovecot/sieve/junk.svbin'
    """

    plugins: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path.endswith(".sieve"):
            raise ValueRejected("path", self.path, "must end in .sieve")
        for name in (*self.plugins, *self.extensions):
            if not _SIEVE_NAME.fullmatch(name):
                raise ValueRejected("Sieve plugin or extension", name, "is not a plain name")

    @property
    def binary(self) -> str:
        return self.path[: -len(".sieve")] + ".svbin"

    def facts(self) -> list[Fact[Any]]:
        return [*super().facts(), PathInfo(self.binary)]

    def compare(self, values: list[Any]) -> Change | None:
        change = super().compare(values[:1])
        if change is None and self.present and values[1] != ("file", self.mode, self.owner, self.group):
            return self._change(f"compile {self.path}", "", self.compile_by_hand())
        if change is not None and self.present:
            return dataclasses.replace(change, by_hand=change.by_hand + self.compile_by_hand())
        return change

    def check_by_hand(self) -> tuple[str, ...]:
        return ()  # compiling it is the check

    def _compile(self) -> str:
        flags = [a for p in self.plugins for a in ("-P", p)]
        if self.extensions:
            flags += ["-x", " ".join("+" + e for e in self.extensions)]
        return shlex.join(["sievec", *flags])

    def compile_by_hand(self) -> tuple[str, ...]:
        """Compiled in place, its binary owned as the script is (Dovecot runs it as the mail user)."""
        binary = self.binary
        return (
            f"{self._compile()} {shlex.quote(self.path)} {shlex.quote(binary)}",
            *ownership_by_hand(binary, self.owner, self.group, self.mode),
        )

    def script(self, ref: str) -> Script:
        q, path, binary = shlex.quote, shlex.quote(self.path), shlex.quote(self.binary)
        if not self.present:
            return Script(backup=(self.path, self.binary), commit=f"rm -f -- {path} {binary}\n")
        base = super().script(ref)
        compile_ = self._compile()
        stage = base.stage + f'also_candidate "${ref}.svbin"\n'
        check = f'check {path} {compile_} "${ref}" "${ref}.svbin"\n'
        # The binary records its script's path: Dovecot recompiles (and, under a read-only /etc, fails to
        # save) a binary made from the candidate. So once validated, the script is compiled again in place.
        commit = base.commit + f'rm -f -- "${ref}.svbin"\n{compile_} {path} {binary}\n'
        commit += f"own {binary} {q(self.owner)} {q(self.group)} {self.mode:o}\n"
        return Script(backup=(self.path, self.binary), stage=stage, check=check, commit=commit)
