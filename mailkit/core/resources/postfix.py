"""Postfix resources: main.cf settings, master.cf services and lookup tables, each set or removed.

Every ``postconf`` edit goes to a private copy of main.cf and master.cf (:data:`POSTFIX_STAGE`),
which ``postfix -c COPY check`` validates before the copy is renamed over the live files: a rejected
value never reaches the running Postfix. Tables are compiled with ``postmap`` beside the live ones
and renamed into place, database first.

>>> MasterService("submission", "inet", "smtpd", chroot="y").entry
'submission inet n - y - - smtpd'
>>> edit_table("# note\\na x\\nb y\\n", {"b": "z", "c": "w"}, ("a",))
'# note\\nb z\\nc w\\n'
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mailkit.core.errors import UsageError
from mailkit.core.facts import Fact, FileInfo, FileState, MasterEntry, PathInfo, PostconfExplicit
from mailkit.core.mail_layout import DB_SUFFIX, LAYOUT
from mailkit.core.redact import redact
from mailkit.core.resources.base import (
    PUBLIC_FILE,
    Change,
    Resource,
    Script,
    SharedStage,
    account_name,
    edit_by_hand,
    file_mode,
    heredoc,
    ownership_by_hand,
    ownership_if_needed,
    unified_diff,
)
from mailkit.core.values import RemotePath, ValueRejected, list_item, setting_name, setting_value

MAIN_CF, MASTER_CF = "/etc/postfix/main.cf", "/etc/postfix/master.cf"
#: Which addresses and protocols the master listens on is read at start only; their defaults (postconf(5),
#: Postfix 3.0 and later: Debian 12 has 3.7, Debian 13 3.10), which apply when main.cf does not set them.
_RESTART_SETTINGS = {"inet_interfaces": "all", "inet_protocols": "all"}


def needs_restart(current: Mapping[str, str], changed: Mapping[str, str | None]) -> bool:
    """Whether the change makes the master listen elsewhere, which only a restart does (and a restart drops the
    sessions open now, where a reload keeps them): a value that really changes, not one written down or removed
    while equal to its default. A value that names others (``$myhostname``) restarts whenever anything changes.

    >>> needs_restart({"inet_interfaces": "all"}, {"inet_interfaces": None})  # removed: its default, "all"
    False
    >>> needs_restart({}, {"inet_interfaces": "loopback-only"}), needs_restart({}, {"inet_protocols": "all"})
    (True, False)
    >>> needs_restart({"inet_interfaces": "$myhostname"}, {"myhostname": "mx.example.org"})
    True
    """
    for name, default in _RESTART_SETTINGS.items():
        before = current.get(name, default)
        if "$" in before and changed:
            return True
        if name in changed:
            after = changed[name]
            after = default if after is None else after
            if "$" in after or before.split() != after.split():
                return True
    return False


POSTFIX_STAGE = SharedStage(
    name="postfix",
    setup=(
        'pf=$(mktemp -d /etc/postfix/.mailkit-stage.XXXXXX)\nprintf \'%s\\n\' "$pf" >> "$b/candidates"\n'
        f'cp -p {MAIN_CF} {MASTER_CF} "$pf/"\n'
        # Postfix before 3.9 says why it refuses a config only on a terminal (else only to syslog): a refusal is
        # run again on one, to say why; the usual pass costs no terminal (about 0.07 s).
        'postfix_check() { postfix -c "$1" check || script -qec "postfix -c \'$1\' check" /dev/null; }\n'
    ),
    check='check postfix postfix_check "$pf"\n',
    commit=f'mv -f -- "$pf/main.cf" {MAIN_CF}\nmv -f -- "$pf/master.cf" {MASTER_CF}\nrmdir -- "$pf"\n',
    backup=(MAIN_CF, MASTER_CF),
)


def _staged(commands: list[list[str]]) -> Script:
    """``postconf`` commands run against the stage copy (``-c "$pf"``), which is then let settle."""
    lines = [shlex.join([argv[0]]) + ' -c "$pf" ' + shlex.join(argv[1:]) for argv in commands]
    return Script(stage="\n".join(lines) + '\nsettle "$pf/main.cf"\n', shared=(POSTFIX_STAGE,))


def _typed(commands: list[list[str]]) -> tuple[str, ...]:
    """The ``postconf`` commands as typed on the live files: the same argv the stage copy is edited with, a
    setting per line as a person would type them.

    >>> _typed([["postconf", "-e", "myhostname=mail.example.org", "smtpd_banner=$myhostname ESMTP"]])
    ('postconf -e myhostname=mail.example.org', "postconf -e 'smtpd_banner=$myhostname ESMTP'")
    """
    return tuple(shlex.join([*argv[:2], each]) for argv in commands for each in argv[2:])


@dataclass(frozen=True)
class Postconf(Resource):
    """Settings in main.cf, written with ``postconf -e`` so everything else (Debian's defaults) stays.

    A value of None removes the setting (``postconf -X``): Postfix's default applies again.
    """

    settings: Mapping[str, Any]
    service: str = "postfix"

    def __post_init__(self) -> None:
        clean = {setting_name(k): None if v is None else setting_value(v, field=k) for k, v in self.settings.items()}
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
        tools = "postconf -e" + ("/-X" if any(v is None for v in changed.values()) else "")
        lines = [f"--- {MAIN_CF}\n", f"+++ {MAIN_CF} ({tools})\n"]
        for key, value in changed.items():
            if key in current:
                lines.append(redact(f"-{key} = {current[key]}\n"))
            if value is not None:
                lines.append(redact(f"+{key} = {value}\n"))
        setting = [k for k, v in changed.items() if v is not None]
        removed = [k for k, v in changed.items() if v is None]
        words = ([f"set {len(setting)} main.cf setting(s): {', '.join(setting)}"] if setting else []) + (
            [f"remove {len(removed)} main.cf setting(s): {', '.join(removed)}"] if removed else []
        )
        commands = ([["postconf", "-e", *(f"{k}={changed[k]}" for k in setting)]] if setting else []) + (
            [["postconf", "-X", *removed]] if removed else []
        )
        restart = needs_restart(current, changed)
        return Change(
            self, "; ".join(words), "".join(lines), (self.service,), restart,
            script=lambda ref: _staged(commands), by_hand=_typed(commands),
        )  # fmt: skip

    def changed_settings(self, current: dict[str, str]) -> dict[str, str | None]:
        return {
            k: v
            for k, v in self.settings.items()
            if (v is None and k in current) or (v is not None and current.get(k) != v)
        }


_MASTER_FIELDS = ("private", "unpriv", "chroot", "wakeup", "maxproc")


@dataclass(frozen=True)
class MasterService(Resource):
    """A master.cf service, set with ``postconf -M`` and its ``-o`` options with ``postconf -P``.

    With ``present=False`` the service is removed (``postconf -MX``), whatever its command.
    """

    name: str
    type: str
    command: str = ""
    private: str = "n"
    unpriv: str = "-"
    chroot: str = "-"
    wakeup: str = "-"
    maxproc: str = "-"
    options: Mapping[str, str] = field(default_factory=dict)
    service: str = "postfix"
    present: bool = True

    def __post_init__(self) -> None:
        list_item(self.name, field="master.cf service name")
        if self.type not in ("inet", "unix", "unix-dgram", "fifo", "pass"):
            raise ValueRejected("master.cf service type", self.type, "is not inet, unix, unix-dgram, fifo or pass")
        for name in _MASTER_FIELDS:
            list_item(getattr(self, name), field=f"master.cf {name}")
        if self.present:
            list_item(self.command.split()[0] if self.command else "", field="master.cf command")
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
        head = [f"--- {MASTER_CF}\n", f"+++ {MASTER_CF} (postconf -M/-P)\n"]
        if not self.present:
            if current is None:
                return None
            old = [f"-{current[0]}\n"] + [f"-  -o {k}={v}\n" for k, v in current[1].items()]
            commands = [["postconf", "-MX", self.key]]
            return Change(
                self, f"remove master.cf service {self.key}", "".join(head + old), (self.service,),
                script=lambda ref: _staged(commands), by_hand=_typed(commands),
            )  # fmt: skip
        old_entry, old_options = current if current else ("", {})
        if old_entry == self.entry and old_options == dict(self.options):
            return None
        lines = list(head)
        if old_entry != self.entry:
            lines += ([f"-{old_entry}\n"] if old_entry else []) + [f"+{self.entry}\n"]
        for key in sorted(set(old_options) | set(self.options)):
            if old_options.get(key) != self.options.get(key):
                lines += [f"-  -o {key}={old_options[key]}\n"] if key in old_options else []
                lines += [f"+  -o {key}={self.options[key]}\n"] if key in self.options else []
        commands = [["postconf", "-Me", f"{self.key}={self.entry}"]]
        commands += [["postconf", "-Pe", f"{self.key}/{k}={v}"] for k, v in self.options.items()]
        commands += [["postconf", "-PX", f"{self.key}/{k}"] for k in old_options if k not in self.options]
        verb = "update" if current else "add"
        return Change(
            self, f"{verb} master.cf service {self.key}", "".join(lines), (self.service,),
            script=lambda ref: _staged(commands), by_hand=_typed(commands),
        )  # fmt: skip


def edit_table(text: str, set_lines: Mapping[str, str], remove: tuple[str, ...] = ()) -> str:
    """``text`` (a map source) with the lines of ``set_lines``' keys replaced and ``remove``'s dropped.

    Comments and other entries stay where they are; new keys are appended in the order given.
    """
    out, seen = [], set()
    for row in text.splitlines():
        key = row.split()[0] if row.strip() and not row.lstrip().startswith("#") else None
        if key in remove:
            continue
        if key is not None and key in set_lines:
            if key not in seen:
                out.append(f"{key} {set_lines[key]}")
                seen.add(key)
            continue
        out.append(row)
    out += [f"{k} {v}" for k, v in set_lines.items() if k not in seen]
    return "\n".join(out) + "\n" if out else ""


@dataclass(frozen=True)
class LookupTable(Resource):
    """A Postfix lookup table: a flat source file compiled with ``postmap`` (the layout's map type).

    Either ``content`` (the whole source), or ``entries`` set and ``remove`` keys dropped in whatever
    the host has (read-modify-write, under the engine's lock). The compiled file is rebuilt only when
    the source changes or is missing; both carry ``owner``, ``group`` and ``mode`` (0600 for a table
    of secrets such as ``sasl_passwd``). ``present=False`` removes both.
    """

    path: str
    content: str | None = field(default=None, repr=False)
    map_type: str = LAYOUT.map_type
    service: str = "postfix"
    entries: Mapping[str, str] = field(default_factory=dict, repr=False)
    remove: tuple[str, ...] = ()
    owner: str = "root"
    group: str = "root"
    mode: int = 0o644
    secret: bool = False
    present: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", RemotePath(self.path))
        if self.map_type not in DB_SUFFIX:
            raise ValueRejected("map type", self.map_type, "is not a postmap database type")
        account_name(self.owner, "owner")
        account_name(self.group, "group")
        file_mode(self.mode)
        if self.content is not None and (self.entries or self.remove):
            raise ValueRejected("table", self.path, "takes either content or entries/remove, not both")
        lines = [f"{k} {v}" for k, v in self.entries.items()] + list(self.remove)
        for number, line in enumerate((self.content or "").split("\n") + lines, 1):
            for char, name in (("\r", "a carriage return"), ("\0", "a NUL byte")):
                if char in line:
                    raise ValueRejected(f"{self.path} line {number}", line, f"contains {name}")
        for key in [*self.entries, *self.remove]:
            list_item(key, field=f"{self.path} key")
        for value in self.entries.values():
            setting_value(value, field=f"{self.path} value")
            if "\n" in value:
                raise ValueRejected(f"{self.path} value", value, "contains a newline")
        object.__setattr__(self, "entries", dict(self.entries))
        object.__setattr__(self, "remove", tuple(self.remove))

    @property
    def db_path(self) -> str:
        return self.path + DB_SUFFIX[self.map_type]

    @property
    def reference(self) -> str:
        """How main.cf names it, e.g. ``lmdb:/etc/postfix/virtual``."""
        return f"{self.map_type}:{self.path}"

    def facts(self) -> list[Fact[Any]]:
        known = self.content.encode() if self.content is not None and self.present and not self.secret else None
        return [FileInfo(self.path, known=known), PathInfo(self.db_path)]

    def wanted(self, current: FileState) -> bytes:
        if self.content is not None:
            return self.content.encode()
        return edit_table((current.content or b"").decode(), self.entries, self.remove).encode()

    def compare(self, values: list[Any]) -> Change | None:
        source: FileState = values[0]
        db = values[1]
        if not self.present:
            if not source.exists and db is None:
                return None
            diff = unified_diff(self.path, source.content, None, secret=self.secret)
            gone = f"rm -f -- {shlex.quote(self.db_path)} {shlex.quote(self.path)}"
            return Change(
                self, f"remove {self.path} and {self.db_path}", diff, (self.service,), script=self._remove,
                by_hand=(gone,),
            )  # fmt: skip
        data = self.wanted(source)
        meta = (source.mode, source.owner, source.group) == (self.mode, self.owner, self.group)
        db_meta = db is not None and db[1:] == (self.mode, self.owner, self.group)
        if source.content == data and meta and db_meta:
            return None
        if source.content == data:
            summary = f"rebuild {self.db_path}"
            diff = "" if db is None else f"({self.owner}:{self.group} {self.mode:o})\n"
        else:
            summary = f"{'update' if source.exists else 'create'} {self.path} (postmap)"
            diff = unified_diff(self.path, source.content, data, secret=self.secret)
        typed = [] if source.content == data else [edit_by_hand(self.path, "secret content" if self.secret else "")]
        typed += ownership_if_needed(self.path, source.ownership, (self.owner, self.group, self.mode))
        typed.append(shlex.join(["postmap", self.reference]))
        if (self.owner, self.group, self.mode) != PUBLIC_FILE:
            typed += ownership_by_hand(self.db_path, self.owner, self.group, self.mode)
        return Change(
            self, summary, diff, (self.service,), script=lambda ref: self._write(ref, data), by_hand=tuple(typed)
        )

    def _write(self, ref: str, data: bytes) -> Script:
        q = shlex.quote
        meta = f"{q(self.owner)} {q(self.group)} {self.mode:o}"
        suffix = DB_SUFFIX[self.map_type]
        stage = (
            f'{ref}=$(candidate {q(self.path)})\ndata > "${ref}" {heredoc(data)}own "${ref}" {meta}\n'
            f'also_candidate "${ref}{suffix}"\n'
            f'check {q(self.path)} postmap {q(self.map_type)}:"${ref}"\nown "${ref}{suffix}" {meta}\n'
        )
        # The database first: a reader then sees old+old, new database+old source, or new+new.
        commit = f'mv -f -- "${ref}{suffix}" {q(self.db_path)}\nmv -f -- "${ref}" {q(self.path)}\n'
        return Script(backup=(self.path, self.db_path), stage=stage, commit=commit)

    def _remove(self, ref: str) -> Script:
        q = shlex.quote
        return Script(backup=(self.path, self.db_path), commit=f"rm -f -- {q(self.db_path)} {q(self.path)}\n")
