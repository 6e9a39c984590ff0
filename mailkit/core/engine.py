"""Render -> plan -> apply: compare desired with current state, then change only what differs.

``plan`` reads every fact in one round trip and changes nothing. ``apply`` does the same; when
something differs it takes the host's apply lock, reads again (another apply may have changed the
host meanwhile), and applies the changes in declared order. A change with a ``run`` step (packages)
runs on its own; every other change joins one transaction script (:mod:`mailkit.core.transaction`):
candidates are validated before they go live, and services that do not come back after the change
get their old files back. Facts are read again after each step, so later resources see its effect
(an apt source written before the packages that need it).

The engine knows the stages of a change, never the kinds of resource.

>>> plan(conn, [File("/etc/mailname", "example.org\\n")])  # doctest: +SKIP
update /etc/mailname
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mailkit.core import display
from mailkit.core.errors import CommandError, ConnectionLost, MailkitError
from mailkit.core.facts import FileInfo, gather
from mailkit.core.hostlock import LOCK_TIMEOUT, TRANSACTION_LOCK, HostLock
from mailkit.core.progress import Progress
from mailkit.core.resources.base import Change, Resource
from mailkit.core.result import Result
from mailkit.core.services import SERVICES
from mailkit.core.ssh import Connection
from mailkit.core.transaction import FAILED, REJECTED, Status, finish_script, parse_status, transaction_script

#: mailkit's own state on a host (mode 0700): the apply lock, backups of every apply, and
#: ``pending-reload``, the services whose config went live but did not yet take effect (it survives
#: a dropped connection).
STATE_DIR = "/var/lib/mailkit"


class ApplyError(MailkitError):
    """An apply that did not go through. ``result`` holds the validator's or the service's output.

    ``restored`` lists the paths put back (empty when a validator refused the candidates: then nothing
    live had changed); ``status`` is everything the host reported.
    """

    def __init__(self, service: str, result: Result, restored: list[str], status: Status | None = None) -> None:
        self.service, self.result, self.restored, self.status = service, result, restored, status
        output = (result.stdout + result.stderr).strip()
        super().__init__(f"{self._headline(service, result, restored, status)}:\n{output}")

    @staticmethod
    def _headline(service: str, result: Result, restored: list[str], status: Status | None) -> str:
        if status is not None and status.rejected:
            return f"{service} was refused by its validator; nothing went live: the running services keep their config"
        if status is not None and status.failed:
            back = ", ".join(status.recovered) or "nothing"
            down = f"; STILL DOWN: {', '.join(status.down)}" if status.down else ""
            lost = f"; could NOT restore: {', '.join(status.restore_failed)}" if status.restore_failed else ""
            return (
                f"{service} did not come back after the change; restored {len(restored)} file(s), "
                f"restarted on the old config: {back}{down}{lost}"
            )
        return f"{service} failed ({result.command} exited {result.exited}); restored {len(restored)} file(s)"


@dataclass
class Plan:
    """The changes that would be made; empty means "no change"."""

    changes: list[Change]
    #: Services an interrupted earlier apply left to take effect, and that apply's backup.
    pending: list[str] = field(default_factory=list)
    pending_backup: str | None = None

    def __bool__(self) -> bool:
        return bool(self.changes)

    @property
    def services(self) -> list[str]:
        return sorted({s for c in self.changes for s in c.services} | set(self.pending))

    def __str__(self) -> str:
        return display.plan_text(self.changes, self.pending)

    __repr__ = __str__  # what a notebook shows as text: the diff, never the resources' content

    def _repr_html_(self) -> str:
        return display.plan_html(self.changes, self.pending)


@dataclass
class ApplyResult:
    """What an apply did: its changes, what was validated, the services reloaded, where the backup is."""

    changes: list[Change]
    validated: list[str] = field(default_factory=list)
    reloaded: list[str] = field(default_factory=list)
    backup: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def __str__(self) -> str:
        return display.result_text(self.changes, self.validated, self.reloaded)

    __repr__ = __str__  # deterministic: no backup path (it holds a timestamp)

    def _repr_html_(self) -> str:
        return display.result_html(self.changes, self.validated, self.reloaded)


@dataclass(frozen=True)
class _Pending:
    services: list[str]
    backup: str | None


def _read(conn: Connection, resources: Sequence[Resource], state_dir: str) -> tuple[_Pending, list[list[Any]]]:
    """Every fact of every resource, and what an interrupted apply left pending, in one round trip."""
    facts = [resource.facts() for resource in resources]
    pending_state, *flat = gather(conn, [FileInfo(f"{state_dir}/pending-reload"), *(f for g in facts for f in g)])
    values, offset = [], 0
    for group in facts:
        values.append(flat[offset : offset + len(group)])
        offset += len(group)
    lines = (pending_state.content or b"").decode().splitlines()
    backups = [line.split(" ", 1)[1] for line in lines if line.startswith("backup ")]
    services = sorted({line for line in lines if line in SERVICES})
    return _Pending(services, backups[0] if backups else None), values


def _compare(resources: Sequence[Resource], values: list[list[Any]]) -> list[Change]:
    changes = [resource.compare(v) for resource, v in zip(resources, values, strict=True)]
    return [c for c in changes if c is not None]


def plan(conn: Connection, resources: Sequence[Resource], *, state_dir: str = STATE_DIR) -> Plan:
    """Compare ``resources`` with the host in one round trip; changes nothing, generates nothing."""
    pending, values = _read(conn, resources, state_dir)
    return Plan(_compare(resources, values), pending.services, pending.backup)


def apply(
    conn: Connection,
    resources: Sequence[Resource],
    progress: Progress | None = None,
    *,
    state_dir: str = STATE_DIR,
    lock_timeout: float = LOCK_TIMEOUT,
) -> ApplyResult:
    """Make the host match ``resources``; a second apply of the same resources changes nothing."""
    resources = list(resources)
    pending, values = _read(conn, resources, state_dir)  # one round trip when there is nothing to do
    if not _compare(resources, values) and not pending.services:
        return ApplyResult([])
    with HostLock(conn, state_dir, lock_timeout, progress):
        return _apply_locked(conn, resources, progress, state_dir)


def _apply_locked(
    conn: Connection, resources: list[Resource], progress: Progress | None, state_dir: str
) -> ApplyResult:
    result = ApplyResult([])
    start = 0
    pending, values = _read(conn, resources, state_dir)
    if pending.services:  # an earlier apply was cut off after its commit: finish it first
        status = _run(
            conn, finish_script(pending.services, pending.backup or _new_backup(state_dir), state_dir), state_dir
        )
        result.reloaded += status.reloaded
    while True:
        changes = _compare(resources[start:], values)
        if not changes:
            return result
        step = next((c for c in changes if c.run is not None), None)
        batch = changes[: changes.index(step)] if step is not None else changes
        if batch:
            backup = _new_backup(state_dir)
            status = _run(conn, transaction_script(batch, backup, state_dir), state_dir, batch)
            result.changes += batch
            result.validated += [v for v in status.validated if v not in result.validated]
            result.reloaded += [r for r in status.reloaded if r not in result.reloaded]
            result.backup = backup
            if step is None:  # everything planned is done; comparing again would judge the new state
                return result
            start = resources.index(step.resource, start)
        else:
            assert step is not None and step.run is not None
            step.run(conn, progress)
            result.changes.append(step)
            start = resources.index(step.resource, start) + 1
        if start >= len(resources):
            return result
        _, values = _read(conn, resources[start:], state_dir)  # what was just changed, seen by the rest


def _new_backup(state_dir: str) -> str:
    return f"{state_dir}/backups/{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(4)}"


def _run(conn: Connection, script: str, state_dir: str, changes: Sequence[Change] = ()) -> Status:
    """Run a transaction or finish script; raise :class:`ApplyError` with what the host reported."""
    try:
        result = run_script(conn, script, f"{state_dir}/{TRANSACTION_LOCK}")
    except ConnectionLost as exc:
        raise ConnectionLost(
            f"{exc}. Every file is either its old or its new version; apply again to finish "
            "(what is left to take effect is recorded as pending on the host)"
        ) from exc
    except CommandError as exc:
        status = parse_status(exc.result.stdout)
        output = status.output or status.log or exc.result.stderr.strip()
        shown = Result(exc.result.command, output, "", exc.result.exited)
        restored = status.restored + status.restore_failed
        if exc.result.exited == REJECTED and status.rejected:
            raise ApplyError(status.rejected, shown, [], status) from None
        if exc.result.exited == FAILED and status.failed:
            raise ApplyError(status.failed, shown, status.restored, status) from None
        what = "the apply" if not changes else ", ".join(c.summary for c in changes[:3])
        raise ApplyError(what, shown, restored, status) from None
    return parse_status(result.stdout)


# The script is checked whole before it runs: a connection cut mid-transfer runs none of it. It is
# kept in /run (memory, 0600) while it runs: it may hold a password on its way to ``doveadm pw``.
# With a lock file ($2), the lock is taken first and held by this process and the script until both end,
# also when the connection drops (see :mod:`mailkit.core.hostlock`).
_RUN_VERIFIED = r"""umask 077
trap '' HUP PIPE
if [ -n "${2:-}" ]; then
    mkdir -p -- "$(dirname -- "$2")"
    exec 9>>"$2"
    flock -w 600 -E 75 9 || { echo "another transaction still runs ($2)" >&2; exit 75; }
fi
f=$(mktemp -p /run mailkit-script.XXXXXX 2>/dev/null || mktemp)
cat > "$f"
if [ "$(sha256sum < "$f" | cut -d' ' -f1)" != "$1" ]; then rm -f "$f"; echo "incomplete script" >&2; exit 98; fi
sh "$f"; rc=$?
rm -f "$f"
exit $rc
"""


def run_script(conn: Connection, script: str, lock: str = "") -> Result:
    """Send ``script`` whole, verify it arrived intact, then run it (a cut connection does not stop it),
    holding the host's ``lock`` file (if named) until it ends."""
    data = script.encode()
    return conn.run(["sh", "-c", _RUN_VERIFIED, "sh", hashlib.sha256(data).hexdigest(), lock], input=data)
