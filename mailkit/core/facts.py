"""Facts: read-only queries of a host, each a command plus a pure parser of its output.

Many facts are read in one round trip with :func:`gather`, which runs them all in one shell.

>>> PackageVersion("postfix").parse("install ok installed\\t3.10.13-1", 0)
'3.10.13-1'
>>> DebianRelease().parse('VERSION_CODENAME=trixie\\nID=debian\\n', 0)
'trixie'
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import shlex
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from mailkit.core.errors import MailkitError
from mailkit.core.result import Result

T = TypeVar("T")


class Runner(Protocol):
    def run(self, argv: list[str], *, input: str | bytes | None = ..., check: bool = ...) -> Result: ...


class Fact(Generic[T]):
    """A command and a parser; ``get(conn)`` reads one, :func:`gather` reads many at once."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def parse(self, stdout: str, exited: int) -> T:
        raise NotImplementedError

    def get(self, conn: Runner) -> T:
        value: T = gather(conn, [self])[0]
        return value


@dataclass(frozen=True)
class FileState:
    """A file as it is on the host; ``content`` is None when the file does not exist."""

    content: bytes | None
    mode: int | None = None
    owner: str | None = None
    group: str | None = None

    @property
    def exists(self) -> bool:
        return self.content is not None

    @property
    def ownership(self) -> tuple[str, str, int] | None:
        """(owner, group, mode), or None when the file does not exist.

        >>> FileState(b"x", 0o640, "root", "dovecot").ownership
        ('root', 'dovecot', 416)
        """
        if self.content is None or self.owner is None or self.group is None or self.mode is None:
            return None
        return (self.owner, self.group, self.mode)


# With a known content's hash ($2), a file that still holds it is answered "=same" (never base64) instead of sent whole.
# A file that goes while it is read (another apply's transaction removes its pending-reload) is absent, not an error.
_FILE_SCRIPT = (
    'if [ -f "$1" ] && meta=$(stat -c "%a %U %G" -- "$1" 2>/dev/null); then '
    'if [ -n "$2" ] && [ "$(sha256sum < "$1" 2>/dev/null)" = "$2  -" ]; then body==same; '
    'elif ! body=$(base64 -w0 -- "$1" 2>/dev/null); then echo absent; exit 0; fi; '
    'printf "%s\\n%s\\n" "$meta" "$body"; '
    "else echo absent; fi"
)


@dataclass(frozen=True)
class FileInfo(Fact[FileState]):
    """Content (byte for byte), mode, owner and group of a regular file.

    ``known`` is the content the caller expects (what it would write): the host compares hashes and
    sends the file back only when it differs, so a re-apply with nothing to change reads no content.

    >>> FileInfo("/etc/mailname", known=b"mail.example.org\\n").command()[-1][:12]
    'd7e16095db47'
    """

    path: str
    known: bytes | None = field(default=None, repr=False)

    def command(self) -> list[str]:
        expected = hashlib.sha256(self.known).hexdigest() if self.known is not None else ""
        return ["sh", "-c", _FILE_SCRIPT, "sh", self.path, expected]

    def parse(self, stdout: str, exited: int) -> FileState:
        if exited != 0:
            raise MailkitError(f"cannot read {self.path}: exit {exited}")
        if stdout.strip() == "absent":
            return FileState(None)
        meta, _, data = stdout.partition("\n")
        mode, owner, group = meta.split()
        content = self.known if data.strip() == "=same" and self.known is not None else base64.b64decode(data.strip())
        return FileState(content, int(mode, 8), owner, group)


@dataclass(frozen=True)
class PackageVersion(Fact["str | None"]):
    """The installed version of a Debian package, or None."""

    name: str

    def command(self) -> list[str]:
        return ["dpkg-query", "-W", "-f=${Status}\\t${Version}", self.name]

    def parse(self, stdout: str, exited: int) -> str | None:
        status, _, version = stdout.partition("\t")
        return version.strip() if exited == 0 and status == "install ok installed" else None


@dataclass(frozen=True)
class ServiceIs(Fact[bool]):
    """Whether systemd says the unit ``is`` so: ``active`` (running now) or ``enabled`` (started at boot).

    >>> ServiceIs("nftables", "enabled").command()
    ['systemctl', 'is-enabled', '--quiet', 'nftables']
    """

    name: str
    state: str = "active"

    def __post_init__(self) -> None:
        if self.state not in ("active", "enabled"):
            raise ValueError(f"a service is active or enabled, not {self.state!r}")

    def command(self) -> list[str]:
        return ["systemctl", f"is-{self.state}", "--quiet", self.name]

    def parse(self, stdout: str, exited: int) -> bool:
        return exited == 0


@dataclass(frozen=True)
class PostconfExplicit(Fact["dict[str, str] | None"]):
    """Settings written in main.cf (``postconf -n``), or None when Postfix is not installed."""

    def command(self) -> list[str]:
        return ["sh", "-c", "command -v postconf >/dev/null || exit 127; postconf -n"]

    def parse(self, stdout: str, exited: int) -> dict[str, str] | None:
        if exited == 127:
            return None
        values = {}
        for line in stdout.splitlines():
            key, sep, value = line.partition(" = ")
            if sep:
                values[key] = value
            elif line.endswith(" ="):
                values[line[:-2]] = ""
        return values


@dataclass(frozen=True)
class SettingValue(Fact["str | None"]):
    """One setting as its service sees it (default or explicit), asked with ``TOOL -h NAME``; None without it."""

    name: str
    tool = ""

    def command(self) -> list[str]:
        return [self.tool, "-h", self.name]

    def parse(self, stdout: str, exited: int) -> str | None:
        return stdout.rstrip("\n") if exited == 0 else None


class PostconfValue(SettingValue):
    tool = "postconf"


class DoveconfValue(SettingValue):
    tool = "doveconf"


@dataclass(frozen=True)
class DebianRelease(Fact[str]):
    def command(self) -> list[str]:
        return ["cat", "/etc/os-release"]

    def parse(self, stdout: str, exited: int) -> str:
        for line in stdout.splitlines():
            key, _, value = line.partition("=")
            if key == "VERSION_CODENAME":
                return value.strip('"')
        return "unknown"


@dataclass(frozen=True)
class ListeningPorts(Fact["frozenset[int]"]):
    """TCP ports something listens on."""

    def command(self) -> list[str]:
        return ["ss", "-Hltn"]

    def parse(self, stdout: str, exited: int) -> frozenset[int]:
        ports = set()
        for line in stdout.splitlines():
            fields = line.split()
            if len(fields) >= 4:
                ports.add(int(fields[3].rsplit(":", 1)[1]))
        return frozenset(ports)


@dataclass(frozen=True)
class Account(Fact["tuple[int, int, str, str] | None"]):
    """A system user from ``getent passwd``: (uid, gid, home, shell), or None."""

    name: str

    def command(self) -> list[str]:
        return ["getent", "passwd", self.name]

    def parse(self, stdout: str, exited: int) -> tuple[int, int, str, str] | None:
        if exited != 0 or not stdout.strip():
            return None
        fields = stdout.strip().split(":")
        return int(fields[2]), int(fields[3]), fields[5], fields[6]


@dataclass(frozen=True)
class Group(Fact["int | None"]):
    """A system group's gid from ``getent group``, or None."""

    name: str

    def command(self) -> list[str]:
        return ["getent", "group", self.name]

    def parse(self, stdout: str, exited: int) -> int | None:
        if exited != 0 or not stdout.strip():
            return None
        return int(stdout.strip().split(":")[2])


@dataclass(frozen=True)
class ReloadCount(Fact[int]):
    """How often a service was reloaded since boot (systemd's journal), for idempotence checks."""

    unit: str

    def command(self) -> list[str]:
        return ["journalctl", "--no-pager", "-q", "-o", "cat", "_PID=1", "--grep", f"Reload(ing|ed) .*{self.unit}"]

    def parse(self, stdout: str, exited: int) -> int:
        return sum(1 for line in stdout.splitlines() if line.startswith("Reloading"))


def batch_script(facts: list[Fact[Any]], boundary: str) -> str:
    """One shell script that runs every fact's command and marks where each output ends, with its exit code."""
    lines = []
    for i, fact in enumerate(facts):
        lines.append(f"printf '%s\\n' '{boundary} {i}'")
        lines.append(f"{shlex.join(fact.command())} 2>/dev/null")
        lines.append(f"printf '\\n%s %s\\n' '{boundary} rc' \"$?\"")
    return "\n".join(lines) + "\n"


def parse_batch(output: str, facts: list[Fact[Any]], boundary: str) -> list[Any]:
    """Split the output of :func:`batch_script` and parse each part with its fact."""
    values = []
    rest = output
    for i, fact in enumerate(facts):
        head = f"{boundary} {i}\n"
        start = rest.find(head)
        end = rest.find(f"\n{boundary} rc ", start)
        if start < 0 or end < 0:
            raise MailkitError(f"incomplete output while reading {type(fact).__name__}")
        body = rest[start + len(head) : end]
        rc_line_end = rest.index("\n", end + 1)
        exited = int(rest[end + len(boundary) + 5 : rc_line_end])
        values.append(fact.parse(body, exited))
        rest = rest[rc_line_end + 1 :]
    return values


def gather(conn: Runner, facts: list[Fact[Any]]) -> list[Any]:
    """Read every fact in one round trip; values come back in the order asked."""
    if not facts:
        return []
    boundary = "--mailkit-" + secrets.token_hex(8)
    result = conn.run(["sh", "-s"], input=batch_script(facts, boundary))
    return parse_batch(result.stdout, facts, boundary)


@dataclass(frozen=True)
class PathInfo(Fact["tuple[str, int, str, str] | None"]):
    """Kind ('file', 'directory', ...), mode, owner and group of a path, without reading it; None if absent."""

    path: str

    def command(self) -> list[str]:
        return ["stat", "-c", "%F|%a|%U|%G", "--", self.path]

    def parse(self, stdout: str, exited: int) -> tuple[str, int, str, str] | None:
        if exited != 0:
            return None
        kind, mode, owner, group = stdout.strip().split("|")
        return (
            ("directory" if kind == "directory" else "file" if "regular" in kind else kind),
            int(mode, 8),
            owner,
            group,
        )


@dataclass(frozen=True)
class MasterEntry(Fact["tuple[str, dict[str, str]] | None"]):
    """A master.cf service (``postconf -M``) and its ``-o`` parameters (``postconf -P``); None if absent."""

    service: str
    type: str

    def command(self) -> list[str]:
        script = 'postconf -M "$1" && echo --- && postconf -P "$1"'
        return ["sh", "-c", script, "sh", f"{self.service}/{self.type}"]

    def parse(self, stdout: str, exited: int) -> tuple[str, dict[str, str]] | None:
        entry, _, params = stdout.partition("---\n")
        if exited != 0 or not entry.strip():
            return None
        entry = entry.split(" -o ", 1)[0]  # postconf -M prints the -o options too; they come from -P
        options = {}
        for line in params.splitlines():
            key, sep, value = line.partition(" = ")
            if sep:
                options[key.rsplit("/", 1)[1]] = value
        return " ".join(entry.split()), options


_APT_SCRIPT = r"""lists=$(ls -t /var/lib/apt/lists/*_Packages* 2>/dev/null | head -n 1)
[ -n "$lists" ] || { echo none; exit 0; }
newer=$(find /etc/apt/sources.list /etc/apt/sources.list.d -newer "$lists" -type f 2>/dev/null | head -n 1)
echo "$(( $(date +%s) - $(stat -c %Y -- "$lists") )) ${newer:+sources-changed}"
"""


@dataclass(frozen=True)
class AptLists(Fact["tuple[int, bool] | None"]):
    """Age in seconds of apt's package lists, and whether an apt source changed after them; None if absent.

    >>> AptLists().parse("120 sources-changed\\n", 0)
    (120, True)
    """

    def command(self) -> list[str]:
        return ["sh", "-c", _APT_SCRIPT]

    def parse(self, stdout: str, exited: int) -> tuple[int, bool] | None:
        words = stdout.split()
        if exited != 0 or not words or words[0] == "none":
            return None
        return int(words[0]), "sources-changed" in words[1:]
