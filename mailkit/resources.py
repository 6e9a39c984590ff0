"""Desired state: what a host should have. Each resource names the facts it needs and compares.

Resources never touch the host themselves: :mod:`mailkit.engine` reads their facts in one round
trip, asks each to ``compare``, and applies the resulting changes.

>>> File("/etc/mailname", "example.org\\n").compare([FileState(b"example.org\\n", 0o644, "root", "root")]) is None
True
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mailkit.errors import UsageError
from mailkit.facts import (
    Account,
    Fact,
    FileInfo,
    FileState,
    Group,
    MasterEntry,
    PackageVersion,
    PathInfo,
    PostconfExplicit,
)
from mailkit.redact import redact
from mailkit.services import service as known_service
from mailkit.values import RemotePath, ValueRejected, list_item, setting_name, setting_value

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def _account_name(value: str, field_name: str) -> str:
    if not value or not set(value) <= _NAME_CHARS or value[0] in "-." or len(value) > 32:
        raise ValueRejected(field_name, value, "is not a valid user or group name")
    return value


def _check_service(name: str | None) -> None:
    if name is not None:
        known_service(name)


@dataclass(frozen=True)
class Change:
    """One difference between desired and current state, with a (redacted) diff to show."""

    resource: Resource = field(repr=False)
    summary: str
    diff: str
    service: str | None = None
    needs_restart: bool = False
    #: What exactly to do, for resources that change part of something (packages, settings).
    data: tuple[str, ...] = ()


def unified_diff(path: str, old: bytes | None, new: bytes, *, secret: bool = False, summary: str = "") -> str:
    """A unified diff without timestamps; secrets redacted, binary, secret and summarised files described."""
    if secret:
        return f"--- {path}\n+++ {path}\n(secret content: not shown)\n"
    if summary:
        return f"--- {path}\n+++ {path}\n(content not shown: {summary})\n"
    try:
        old_text = (old or b"").decode()
        new_text = new.decode()
    except UnicodeDecodeError:
        return f"--- {path}\n+++ {path}\n(binary content changed: {len(new)} bytes)\n"
    lines = difflib.unified_diff(
        redact(old_text).splitlines(keepends=True),
        redact(new_text).splitlines(keepends=True),
        fromfile="/dev/null" if old is None else path,
        tofile=path,
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


class Resource:
    """Base: a piece of desired state."""

    #: Resources of the same ``phase`` are applied together; 0 = system (packages, accounts), 1 = config.
    phase = 1

    def facts(self) -> list[Fact[Any]]:
        raise NotImplementedError

    def compare(self, values: list[Any]) -> Change | None:
        raise NotImplementedError


@dataclass(frozen=True)
class File(Resource):
    """A whole file with owner, group and mode. ``secret`` hides its content from every diff."""

    path: str
    content: str | bytes = field(repr=False)  # may be secret: never in a repr
    owner: str = "root"
    group: str = "root"
    mode: int = 0o644
    service: str | None = None
    secret: bool = False
    #: Shown instead of a diff, for content that is public but unreadable (a certificate).
    summary: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", RemotePath(self.path))
        _account_name(self.owner, "owner")
        _account_name(self.group, "group")
        if not 0 <= self.mode <= 0o7777:
            raise ValueRejected("mode", oct(self.mode), "is not a file mode")
        _check_service(self.service)

    @property
    def data(self) -> bytes:
        return self.content.encode() if isinstance(self.content, str) else self.content

    def facts(self) -> list[Fact[Any]]:
        return [FileInfo(self.path)]

    def compare(self, values: list[Any]) -> Change | None:
        current: FileState = values[0]
        if current.content == self.data and (current.mode, current.owner, current.group) == (
            self.mode,
            self.owner,
            self.group,
        ):
            return None
        if current.content == self.data:
            summary = f"{self.path}: {current.owner}:{current.group} {current.mode:o} -> "
            summary += f"{self.owner}:{self.group} {self.mode:o}"
            return Change(self, summary, "", self.service)
        verb = "update" if current.exists else "create"
        diff = unified_diff(self.path, current.content, self.data, secret=self.secret, summary=self.summary)
        return Change(self, f"{verb} {self.path}", diff, self.service)


@dataclass(frozen=True)
class LookupTable(Resource):
    """A Postfix lookup table: a flat source file compiled with ``postmap`` (``lmdb:`` by default).

    The compiled file is rebuilt only when the source changes or is missing.
    """

    path: str
    content: str = field(repr=False)
    map_type: str = "lmdb"
    service: str = "postfix"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", RemotePath(self.path))
        if self.map_type not in ("lmdb", "cdb", "hash", "btree"):
            raise ValueRejected("map type", self.map_type, "is not a postmap database type")
        for number, line in enumerate(self.content.split("\n"), 1):
            for char, name in (("\r", "a carriage return"), ("\0", "a NUL byte")):
                if char in line:
                    raise ValueRejected(f"{self.path} line {number}", line, f"contains {name}")

    @property
    def db_path(self) -> str:
        suffix = {"lmdb": ".lmdb", "cdb": ".cdb", "hash": ".db", "btree": ".db"}[self.map_type]
        return self.path + suffix

    @property
    def reference(self) -> str:
        """How main.cf names it, e.g. ``lmdb:/etc/postfix/virtual``."""
        return f"{self.map_type}:{self.path}"

    def facts(self) -> list[Fact[Any]]:
        return [FileInfo(self.path), PathInfo(self.db_path)]

    def compare(self, values: list[Any]) -> Change | None:
        source: FileState = values[0]
        db = values[1]
        data = self.content.encode()
        if source.content == data and db is not None:
            return None
        if source.content == data:
            return Change(self, f"rebuild {self.db_path}", "", self.service)
        verb = "update" if source.exists else "create"
        return Change(
            self, f"{verb} {self.path} (postmap)", unified_diff(self.path, source.content, data), self.service
        )


@dataclass(frozen=True)
class Postconf(Resource):
    """Settings in main.cf, written with ``postconf -e`` so everything else (Debian's defaults) stays."""

    settings: Mapping[str, Any]
    service: str = "postfix"

    def __post_init__(self) -> None:
        clean = {setting_name(k): setting_value(v, field=k) for k, v in self.settings.items()}
        object.__setattr__(self, "settings", clean)

    def facts(self) -> list[Fact[Any]]:
        return [PostconfExplicit()]

    def compare(self, values: list[Any]) -> Change | None:
        current: dict[str, str] | None = values[0]
        if current is None:
            raise UsageError("Postfix is not installed: install it before setting main.cf parameters")
        changed = self.changed_settings(current)
        if not changed:
            return None
        lines = ["--- /etc/postfix/main.cf\n", "+++ /etc/postfix/main.cf (postconf -e)\n"]
        for key, value in changed.items():
            if key in current:
                lines.append(redact(f"-{key} = {current[key]}\n"))
            lines.append(redact(f"+{key} = {value}\n"))
        names = ", ".join(changed)
        # Which addresses and protocols the master listens on is read at start only.
        restart = bool({"inet_interfaces", "inet_protocols"} & set(changed))
        summary = f"set {len(changed)} main.cf setting(s): {names}"
        data = tuple(f"{k}={v}" for k, v in changed.items())
        return Change(self, summary, "".join(lines), self.service, needs_restart=restart, data=data)

    def changed_settings(self, current: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in self.settings.items() if current.get(k) != v}


_MASTER_FIELDS = ("private", "unpriv", "chroot", "wakeup", "maxproc")


@dataclass(frozen=True)
class MasterService(Resource):
    """A master.cf service, set with ``postconf -M`` and its ``-o`` options with ``postconf -P``.

    >>> MasterService("submission", "inet", "smtpd", chroot="y").entry
    'submission inet n - y - - smtpd'
    """

    name: str
    type: str
    command: str
    private: str = "n"
    unpriv: str = "-"
    chroot: str = "-"
    wakeup: str = "-"
    maxproc: str = "-"
    options: Mapping[str, str] = field(default_factory=dict)
    service: str = "postfix"

    def __post_init__(self) -> None:
        list_item(self.name, field="master.cf service name")
        if self.type not in ("inet", "unix", "unix-dgram", "fifo", "pass"):
            raise ValueRejected("master.cf service type", self.type, "is not inet, unix, unix-dgram, fifo or pass")
        for name in _MASTER_FIELDS:
            list_item(getattr(self, name), field=f"master.cf {name}")
        setting_value(self.command, field="master.cf command")
        clean = {setting_name(k): setting_value(v, field=k) for k, v in self.options.items()}
        for key, value in clean.items():
            if " " in value:
                raise ValueRejected(key, value, "contains a space (master.cf -o values cannot)")
        object.__setattr__(self, "options", clean)

    @property
    def entry(self) -> str:
        fields = [getattr(self, name) for name in _MASTER_FIELDS]
        return " ".join([self.name, self.type, *fields, *self.command.split()])

    @property
    def key(self) -> str:
        return f"{self.name}/{self.type}"

    def facts(self) -> list[Fact[Any]]:
        return [MasterEntry(self.name, self.type)]

    def compare(self, values: list[Any]) -> Change | None:
        current: tuple[str, dict[str, str]] | None = values[0]
        old_entry, old_options = current if current else ("", {})
        if old_entry == self.entry and old_options == dict(self.options):
            return None
        lines = ["--- /etc/postfix/master.cf\n", "+++ /etc/postfix/master.cf (postconf -M/-P)\n"]
        if old_entry != self.entry:
            lines += ([f"-{old_entry}\n"] if old_entry else []) + [f"+{self.entry}\n"]
        for key in sorted(set(old_options) | set(self.options)):
            if old_options.get(key) != self.options.get(key):
                lines += [f"-  -o {key}={old_options[key]}\n"] if key in old_options else []
                lines += [f"+  -o {key}={self.options[key]}\n"] if key in self.options else []
        verb = "update" if current else "add"
        return Change(self, f"{verb} master.cf service {self.key}", "".join(lines), self.service)


_DEBCONF_LINE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:$ ,'")


@dataclass(frozen=True)
class Packages(Resource):
    """Debian packages, installed noninteractively; ``preseed`` lines go to debconf-set-selections first.

    >>> Packages(["postfix"], preseed=["postfix postfix/main_mailer_type select Internet Site"]).names
    ('postfix',)
    """

    names: tuple[str, ...]
    preseed: tuple[str, ...] = ()
    phase = 0

    def __post_init__(self) -> None:
        names = tuple(self.names)
        for name in names:
            if not name or not set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789+-.") or name[0] in "-.+":
                raise ValueRejected("package", name, "is not a Debian package name")
        for line in self.preseed:
            if not set(line) <= _DEBCONF_LINE or len(line.split()) < 3:
                raise ValueRejected("preseed", line, "is not a 'package question type value' debconf line")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "preseed", tuple(self.preseed))

    def facts(self) -> list[Fact[Any]]:
        return [PackageVersion(name) for name in self.names]

    def compare(self, values: list[Any]) -> Change | None:
        missing = tuple(name for name, version in zip(self.names, values, strict=True) if version is None)
        if not missing:
            return None
        diff = "".join(f"+ package {m}\n" for m in missing)
        return Change(self, f"install {' '.join(missing)}", diff, data=missing)


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
    phase = 0

    def __post_init__(self) -> None:
        _account_name(self.user, "user")
        _account_name(self.group, "group")
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
        return Change(self, f"create account {self.user}:{self.group}", "".join(parts))


@dataclass(frozen=True)
class Directory(Resource):
    """A directory with owner, group and mode (created with its parents if missing)."""

    path: str
    owner: str = "root"
    group: str = "root"
    mode: int = 0o755
    phase = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", RemotePath(self.path))
        _account_name(self.owner, "owner")
        _account_name(self.group, "group")

    def facts(self) -> list[Fact[Any]]:
        return [PathInfo(self.path)]

    def compare(self, values: list[Any]) -> Change | None:
        current = values[0]
        wanted = ("directory", self.mode, self.owner, self.group)
        if current == wanted:
            return None
        if current is not None and current[0] != "directory":
            raise UsageError(f"{self.path} exists and is a {current[0]}, not a directory")
        verb = "fix" if current else "create"
        return Change(self, f"{verb} directory {self.path} ({self.owner}:{self.group} {self.mode:o})", "")
