"""Generic resources: whole files and directories, present or absent.

>>> File("/etc/mailname", "example.org\\n").compare([FileState(b"example.org\\n", 0o644, "root", "root")]) is None
True
>>> File("/etc/old.conf", present=False).compare([FileState(None)]) is None
True
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mailkit.core.errors import UsageError
from mailkit.core.facts import Fact, FileInfo, FileState, PathInfo
from mailkit.core.resources.base import (
    Change,
    Resource,
    Script,
    account_name,
    edit_by_hand,
    file_mode,
    heredoc,
    ownership_by_hand,
    ownership_if_needed,
    service_names,
    unified_diff,
)
from mailkit.core.services import service as known_service
from mailkit.core.values import RemotePath, ValueRejected

#: Stands for the candidate file's path in a ``File.check`` command.
CANDIDATE = "{candidate}"


@dataclass(frozen=True)
class File(Resource):
    """A whole file with owner, group and mode, or (``present=False``) no file at that path.

    ``secret`` hides its content from every diff; ``summary`` is shown instead of a diff for public
    but unreadable content (a certificate). ``check`` validates the candidate before it goes live:
    an argv where :data:`CANDIDATE` stands for the candidate's path, e.g.
    ``("doveconf", "-n", "-c", CANDIDATE)``. ``service`` names the services that use the file
    (one name or a tuple): they take effect after it changes.
    """

    path: str
    content: str | bytes = field(default=b"", repr=False)  # may be secret: never in a repr
    owner: str = "root"
    group: str = "root"
    mode: int = 0o644
    service: str | tuple[str, ...] | None = None
    secret: bool = False
    summary: str = ""
    check: Sequence[str] = ()
    present: bool = True
    #: The services must restart (not reload) to see a change of this file.
    restart: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", RemotePath(self.path))
        account_name(self.owner, "owner")
        account_name(self.group, "group")
        file_mode(self.mode)
        service_names(self.service)
        object.__setattr__(self, "check", tuple(self.check))
        if self.check and CANDIDATE not in self.check:
            raise ValueRejected("check", " ".join(self.check), f"must name the candidate as {CANDIDATE}")

    @property
    def data(self) -> bytes:
        return self.content.encode() if isinstance(self.content, str) else self.content

    @property
    def services(self) -> tuple[str, ...]:
        return service_names(self.service)

    def facts(self) -> list[Fact[Any]]:
        return [FileInfo(self.path, known=self.data if self.present and not self.secret else None)]

    def compare(self, values: list[Any]) -> Change | None:
        current: FileState = values[0]
        if not self.present:
            if not current.exists:
                return None
            diff = unified_diff(self.path, current.content, None, secret=self.secret, summary=self.summary)
            return self._change(f"remove {self.path}", diff, (f"rm -f -- {shlex.quote(self.path)}",))
        same_meta = (current.mode, current.owner, current.group) == (self.mode, self.owner, self.group)
        if current.content == self.data and same_meta:
            return None
        ownership = tuple(ownership_by_hand(self.path, self.owner, self.group, self.mode))
        if current.content == self.data:
            summary = f"{self.path}: {current.owner}:{current.group} {current.mode:o} -> "
            return self._change(summary + f"{self.owner}:{self.group} {self.mode:o}", "", ownership)
        verb = "update" if current.exists else "create"
        diff = unified_diff(self.path, current.content, self.data, secret=self.secret, summary=self.summary)
        edit = edit_by_hand(self.path, "secret content" if self.secret else self.summary)
        wanted = (self.owner, self.group, self.mode)
        typed = (edit, *ownership_if_needed(self.path, current.ownership, wanted), *self.check_by_hand())
        return self._change(f"{verb} {self.path}", diff, typed)

    def _change(self, summary: str, diff: str, by_hand: tuple[str, ...] = ()) -> Change:
        return Change(self, summary, diff, self.services, self.restart, script=self.script, by_hand=by_hand)

    def check_by_hand(self) -> tuple[str, ...]:
        """The check, run on the live file once it is written (by hand there is no candidate beside it); none when a
        service using the file checks its whole configuration before its reload (the plan ends with that check)."""
        if not self.check or any(known_service(name).check for name in self.services):
            return ()
        return (shlex.join(self.path if a == CANDIDATE else a for a in self.check),)

    def script(self, ref: str) -> Script:
        q, path = shlex.quote, shlex.quote(self.path)
        if not self.present:
            return Script(backup=(self.path,), commit=f"rm -f -- {path}\n")
        stage = f'{ref}=$(candidate {path})\ndata > "${ref}" {heredoc(self.data)}'
        stage += f'own "${ref}" {q(self.owner)} {q(self.group)} {self.mode:o}\n'
        check = ""
        if self.check:
            argv = " ".join(f'"${ref}"' if a == CANDIDATE else q(a) for a in self.check)
            check = f"check {q(self.path)} {argv}\n"
        return Script(backup=(self.path,), stage=stage, check=check, commit=f'mv -f -- "${ref}" {path}\n')


@dataclass(frozen=True)
class Directory(Resource):
    """A directory with owner, group and mode (created with its parents), or removed with what it holds.

    Removal keeps a copy in the apply's backup, restored if the apply fails.
    """

    path: str
    owner: str = "root"
    group: str = "root"
    mode: int = 0o755
    present: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", RemotePath(self.path))
        if self.path in ("/", "/etc", "/var", "/usr", "/home", "/root"):
            raise ValueRejected("path", self.path, "is a system directory mailkit never manages")
        account_name(self.owner, "owner")
        account_name(self.group, "group")
        file_mode(self.mode)

    def facts(self) -> list[Fact[Any]]:
        return [PathInfo(self.path)]

    def compare(self, values: list[Any]) -> Change | None:
        current = values[0]
        if current is not None and current[0] != "directory":
            raise UsageError(f"{self.path} exists and is a {current[0]}, not a directory")
        if not self.present:
            if current is None:
                return None
            gone = f"rm -r -- {shlex.quote(self.path)}"
            return Change(
                self, f"remove directory {self.path}", f"- directory {self.path}\n", script=self.script,
                by_hand=(gone,),
            )  # fmt: skip
        if current == ("directory", self.mode, self.owner, self.group):
            return None
        verb = "fix" if current else "create"
        summary = f"{verb} directory {self.path} ({self.owner}:{self.group} {self.mode:o})"
        made = shlex.join(["install", "-d", "-o", self.owner, "-g", self.group, "-m", f"{self.mode:o}", self.path])
        return Change(self, summary, "", script=self.script, by_hand=(made,))

    def script(self, ref: str) -> Script:
        q, path = shlex.quote, shlex.quote(self.path)
        if not self.present:
            return Script(backup=(self.path,), commit=f"rm -rf -- {path}\n")
        # Made at stage time: candidates of files inside it are staged in it. Parents it creates are
        # 0755, as parent directories are (the script's own umask is 077). ``save_meta`` records
        # its owner and mode (not its content) or that it was absent, for a restore.
        stage = (
            f"save_meta {path}\n(umask 022 && mkdir -p -- {path})\n"
            f"own {path} {q(self.owner)} {q(self.group)} {self.mode:o}\n"
        )
        return Script(stage=stage)
