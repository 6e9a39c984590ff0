"""The resource protocol: what a piece of desired state declares, and what its change contributes.

A resource names the facts it needs (read by the engine in one round trip), compares them with what
it wants (pure: no host access), and its change brings its own way of being applied. The engine
only knows the stages every change goes through, never the kinds of resource:

1. ``run``: a step that must happen on its own, now (installing packages); most changes have none.
2. the transaction, one shell script for every other change: ``backup`` the live paths, ``stage``
   candidates beside the live files, ``check`` the candidates (nothing live has changed yet),
   ``commit`` them (renames), then the engine makes the touched services take effect, in dependency
   order, and restores everything if one does not come back.

>>> Script(stage="echo hi").stage
'echo hi'
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mailkit.core.facts import Fact
from mailkit.core.progress import Progress
from mailkit.core.redact import redact
from mailkit.core.services import Service, in_order
from mailkit.core.services import service as known_service
from mailkit.core.values import ValueRejected

if TYPE_CHECKING:
    from mailkit.core.ssh import Connection

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def account_name(value: str, field_name: str) -> str:
    """A user or group name as Debian's adduser accepts it."""
    if not value or not set(value) <= _NAME_CHARS or value[0] in "-." or len(value) > 32:
        raise ValueRejected(field_name, value, "is not a valid user or group name")
    return value


def file_mode(value: int) -> int:
    if not isinstance(value, int) or not 0 <= value <= 0o7777:
        raise ValueRejected("mode", value, "is not a file mode")
    return value


def service_names(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """``"postfix"``, ``("postfix", "dovecot")`` or None, as a tuple of known service names."""
    names = () if value is None else (value,) if isinstance(value, str) else tuple(value)
    for name in names:
        known_service(name)
    return names


@dataclass(frozen=True)
class SharedStage:
    """A candidate area several changes write into, set up, checked and committed once per apply.

    Postfix's is a private copy of main.cf and master.cf that every ``postconf -c`` edit goes to.
    ``setup``, ``check`` and ``commit`` are shell fragments; ``name`` tells stages apart.
    """

    name: str
    setup: str
    check: str
    commit: str
    backup: tuple[str, ...] = ()


@dataclass(frozen=True)
class Script:
    """The shell fragments one change contributes to the transaction (see the module docstring).

    Fragments use the transaction's helpers: ``candidate PATH`` (prints a new private temporary file
    beside PATH, removed if the apply fails), ``own PATH OWNER GROUP MODE``, ``check WHAT CMD...``
    (a validator: its failure stops the apply before anything is live), ``settle PATH``,
    ``save PATH`` and ``data`` (``base64 -d``) for here-documents.
    """

    backup: tuple[str, ...] = ()
    stage: str = ""
    check: str = ""
    commit: str = ""
    shared: tuple[SharedStage, ...] = ()


@dataclass(frozen=True)
class Change:
    """One difference between desired and current state, with a (redacted) diff to show.

    ``script`` makes the change's fragments for the transaction, given a unique shell-variable
    prefix; ``run`` is a step run on its own before the transaction (packages). ``by_hand`` is the
    same change as the commands a person types on their own server, as root (made by the resource
    from what it runs itself, so the two cannot drift); the services' reloads follow the plan's.
    """

    resource: Resource = field(repr=False)
    summary: str
    diff: str
    services: tuple[str, ...] = ()
    needs_restart: bool = False
    script: Callable[[str], Script] | None = field(default=None, repr=False, compare=False)
    run: Callable[[Connection, Progress | None], None] | None = field(default=None, repr=False, compare=False)
    by_hand: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @property
    def service(self) -> str | None:
        """The first service this change affects (the common case has one)."""
        return self.services[0] if self.services else None


def service_steps(changes: Iterable[Change], pending: Iterable[str] = ()) -> list[tuple[Service, bool]]:
    """Each service the changes touch (and each ``pending`` one), in the apply's order, with whether it restarts
    (a change needs that) rather than reloads: what the apply runs and what a person types, from one place.

    >>> [(s.name, restart) for s, restart in service_steps([], ["dovecot", "postfix"])]
    [('dovecot', False), ('postfix', False)]
    """
    changes = list(changes)
    touched = {name for c in changes for name in c.services} | set(pending)
    restart = {name for c in changes if c.needs_restart for name in c.services}
    return [(svc, svc.name in restart) for svc in in_order(touched)]


class Resource:
    """Base: a piece of desired state. Subclasses name their facts and compare; that is all."""

    def facts(self) -> list[Fact[Any]]:
        raise NotImplementedError

    def compare(self, values: list[Any]) -> Change | None:
        """The change that makes the host match, from the facts' values; None when it already does."""
        raise NotImplementedError


#: A file's owner, group and mode when root makes it and nothing says otherwise (umask 022).
PUBLIC_FILE = ("root", "root", 0o644)


def edit_by_hand(path: str, hidden: str = "") -> str:
    """The by-hand step of a file whose new content the plan's diff shows, or (``hidden``) says what it holds.

    >>> edit_by_hand("/etc/postfix/virtual")
    'editor /etc/postfix/virtual   # make it read as the diff above shows'
    >>> edit_by_hand("/etc/ssl/private/mail.key", "secret content")
    'editor /etc/ssl/private/mail.key   # secret content, not shown here'
    """
    said = f"{hidden}, not shown here" if hidden else "make it read as the diff above shows"
    return f"editor {shlex.quote(path)}   # {said}"


def ownership_by_hand(path: str, owner: str, group: str, mode: int) -> list[str]:
    """``chown`` and ``chmod`` lines giving ``path`` its owner, group and mode.

    >>> ownership_by_hand("/etc/dovecot/users", "root", "dovecot", 0o640)
    ['chown root:dovecot /etc/dovecot/users', 'chmod 640 /etc/dovecot/users']
    """
    return [f"chown {shlex.quote(f'{owner}:{group}')} {shlex.quote(path)}", f"chmod {mode:o} {shlex.quote(path)}"]


def ownership_if_needed(path: str, current: tuple[str, str, int] | None, wanted: tuple[str, str, int]) -> list[str]:
    """The ``chown``/``chmod`` lines a by-hand edit needs: an existing file's (owner, group, mode) that differ from
    ``wanted``, or a new file (``current`` None) that must not stay at root's defaults (:data:`PUBLIC_FILE`).

    >>> ownership_if_needed("/etc/postfix/virtual", None, PUBLIC_FILE)
    []
    >>> ownership_if_needed("/etc/dovecot/users", ("root", "root", 0o644), ("root", "dovecot", 0o640))
    ['chown root:dovecot /etc/dovecot/users', 'chmod 640 /etc/dovecot/users']
    """
    if current == wanted or (current is None and wanted == PUBLIC_FILE):
        return []
    return ownership_by_hand(path, *wanted)


def unified_diff(path: str, old: bytes | None, new: bytes | None, *, secret: bool = False, summary: str = "") -> str:
    """A unified diff without timestamps; secrets redacted, binary, secret and summarised files described.

    A file removed whole is counted, not listed (it may be an admin's own file, with their keys in it):

    >>> print(unified_diff("/etc/x", b"a\\nb\\n", None), end="")
    --- /etc/x
    +++ /dev/null
    (the whole file goes: 2 lines, not shown)
    """
    to_file = path if new is not None else "/dev/null"
    if secret:
        return f"--- {path}\n+++ {to_file}\n(secret content: not shown)\n"
    if summary:
        return f"--- {path}\n+++ {to_file}\n(content not shown: {summary})\n"
    if new is None and old is not None:
        count = old.count(b"\n") + (0 if old.endswith(b"\n") or not old else 1)
        return f"--- {path}\n+++ {to_file}\n(the whole file goes: {count} line{'s' * (count != 1)}, not shown)\n"
    try:
        old_text = (old or b"").decode()
        new_text = (new or b"").decode()
    except UnicodeDecodeError:
        return f"--- {path}\n+++ {to_file}\n(binary content changed: {len(new or b'')} bytes)\n"
    lines = difflib.unified_diff(
        redact(old_text).splitlines(keepends=True),
        redact(new_text).splitlines(keepends=True),
        fromfile="/dev/null" if old is None else path,
        tofile=to_file,
    )
    ended = (line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
    return "".join(collapse_removed_comments(ended))


#: Removed comment or blank lines in a row from this many on are counted in a diff instead of listed.
COLLAPSE_FROM = 4


def collapse_removed_comments(lines: Iterable[str]) -> list[str]:
    """Diff lines with each long run of removed comment or blank lines replaced by one line that counts them.

    Replacing a stock file (Debian's commented ``dovecot.conf``) is then a diff of the settings, not of its comments.

    >>> collapse_removed_comments(["-# a\\n", "-# b\\n", "-\\n", "-# c\\n", "-x = 1\\n", "+x = 2\\n"])
    ['-(4 comment or blank lines)\\n', '-x = 1\\n', '+x = 2\\n']
    """
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        out.extend([f"-({len(run)} comment or blank lines)\n"] if len(run) >= COLLAPSE_FROM else run)
        run.clear()

    for line in lines:
        body = line[1:].strip()
        if line.startswith("-") and not line.startswith("---") and (not body or body.startswith("#")):
            run.append(line)
            continue
        flush()
        out.append(line)
    flush()
    return out


def heredoc(data: bytes) -> str:
    """``data`` as a base64 here-document for a fragment (``data <<'MAILKIT_DATA' ...``)."""
    import base64

    return f"<<'MAILKIT_DATA'\n{base64.encodebytes(data).decode()}MAILKIT_DATA\n"
