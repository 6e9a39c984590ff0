"""Render -> plan -> apply: compare desired with current state, then change only what differs.

``plan`` reads every fact in one round trip and changes nothing. ``apply`` installs packages and
accounts first, then writes config in one batched script: every touched file is backed up on the
host, written to a temporary file in its own directory and renamed into place (each file is
either the old or the new version, whatever happens to the connection). The touched services'
validators run next; if one fails, every file of this apply is restored and the error carries the
validator's output, while the services keep running on their old config. Only then are the touched
services reloaded (or restarted where a reload is not enough) and checked to be active.

>>> plan(conn, [File("/etc/mailname", "example.org\\n")])  # doctest: +SKIP
update /etc/mailname
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mailkit import display
from mailkit.errors import CommandError, ConnectionLost, MailkitError
from mailkit.facts import FileInfo, gather
from mailkit.resources import (
    Change,
    Directory,
    File,
    LookupTable,
    MasterService,
    Packages,
    Postconf,
    Resource,
    SystemAccount,
)
from mailkit.result import Result
from mailkit.services import SERVICES
from mailkit.services import service as service_named
from mailkit.ssh import Connection

#: mailkit's own state on a host: backups of every apply, and ``pending-reload``, the services whose
#: config was written but not yet validated and reloaded (it survives a dropped connection).
STATE_DIR = "/var/lib/mailkit"
KEEP_BACKUPS = 20
POSTFIX_CONFIG = ("/etc/postfix/main.cf", "/etc/postfix/master.cf")
Progress = Callable[[str], None]


class ApplyError(MailkitError):
    """Validation failed: the previous files were restored. ``result`` is the validator's output."""

    def __init__(self, service: str, result: Result, restored: list[str]) -> None:
        self.service, self.result, self.restored = service, result, restored
        output = (result.stdout + result.stderr).strip()
        super().__init__(
            f"{service} rejected the new config ({result.command} exited {result.exited}); "
            f"restored {len(restored)} file(s), {service} keeps its previous config:\n{output}"
        )


@dataclass
class Plan:
    """The changes that would be made; empty means "no change"."""

    changes: list[Change]
    #: Services an interrupted earlier apply left to validate and reload, and that apply's backup.
    pending: list[str] = field(default_factory=list)
    pending_backup: str | None = None

    def __bool__(self) -> bool:
        return bool(self.changes)

    @property
    def services(self) -> list[str]:
        return sorted({c.service for c in self.changes if c.service} | set(self.pending))

    def __str__(self) -> str:
        return display.plan_text(self.changes, self.pending)

    __repr__ = __str__  # what a notebook shows as text: the diff, never the resources' content

    def _repr_html_(self) -> str:
        return display.plan_html(self.changes, self.pending)


@dataclass
class ApplyResult:
    """What an apply did: its changes, the services it validated and reloaded, where the backup is."""

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


def plan(conn: Connection, resources: Sequence[Resource], *, state_dir: str = STATE_DIR) -> Plan:
    """Compare ``resources`` with the host in one round trip; changes nothing."""
    pending, values = _read(conn, resources, state_dir)
    return Plan(_compare(resources, values), *pending)


def _read(
    conn: Connection, resources: Sequence[Resource], state_dir: str
) -> tuple[tuple[list[str], str | None], list[list[Any]]]:
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
    return (services, backups[0] if backups else None), values


def _compare(resources: Sequence[Resource], values: list[list[Any]]) -> list[Change]:
    changes = [resource.compare(v) for resource, v in zip(resources, values, strict=True)]
    return [c for c in changes if c is not None]


def apply(
    conn: Connection,
    resources: Sequence[Resource],
    progress: Progress | None = None,
    *,
    state_dir: str = STATE_DIR,
) -> ApplyResult:
    """Make the host match ``resources``; a second apply of the same resources changes nothing."""
    pending, values = _read(conn, resources, state_dir)  # one round trip when there is nothing to do
    system = [(r, v) for r, v in zip(resources, values, strict=True) if r.phase == 0]
    system_changes = _compare([r for r, _ in system], [v for _, v in system])
    for change in system_changes:
        _apply_system(conn, change, progress)
    result = ApplyResult(list(system_changes))
    config = [(r, v) for r, v in zip(resources, values, strict=True) if r.phase != 0]
    if system_changes and config:  # packages may have created config files: read again
        config_plan = plan(conn, [r for r, _ in config], state_dir=state_dir)
    else:
        config_plan = Plan(_compare([r for r, _ in config], [v for _, v in config]), *pending)
    if not config_plan and not config_plan.pending:
        return result
    if not config_plan:  # an earlier apply was cut off after writing: finish its validation and reload
        _validate_and_reload(conn, config_plan, result, config_plan.pending_backup, state_dir)
        return result
    backup = f"{state_dir}/backups/{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(3)}"
    script = config_script(config_plan.changes, backup, config_plan.services, state_dir)
    try:
        run_script(conn, script)
    except ConnectionLost as exc:
        raise ConnectionLost(
            f"{exc}. Every file is either its old or its new version; apply again to finish "
            "(validation and reload are recorded as pending on the host)"
        ) from exc
    except CommandError as exc:
        restored = _restore(conn, backup)
        conn.run(["rm", "-f", f"{state_dir}/pending-reload"])
        raise ApplyError("apply", exc.result, restored) from None
    result.backup = backup
    _validate_and_reload(conn, config_plan, result, backup, state_dir)
    result.changes = system_changes + config_plan.changes
    return result


def _validate_and_reload(
    conn: Connection, the_plan: Plan, result: ApplyResult, backup: str | None, state_dir: str
) -> None:
    """Validate every touched service (restoring on failure), then reload them and confirm they run."""
    for name in the_plan.services:
        svc = service_named(name)
        check = conn.run(list(svc.validate), check=False, pty=svc.validate_on_tty)
        if check.failed:
            restored = _restore(conn, backup) if backup else []
            conn.run(["rm", "-f", f"{state_dir}/pending-reload"])
            raise ApplyError(name, check, restored)
        result.validated.append(name)
    for name in the_plan.services:
        restart = any(c.needs_restart for c in the_plan.changes if c.service == name)
        svc = service_named(name)
        conn.run(list(svc.apply_command(restart)))
        conn.run(["systemctl", "is-active", "--quiet", svc.unit])
        result.reloaded.append(name)
    conn.run(["rm", "-f", f"{state_dir}/pending-reload"])


# The script is checked whole before it runs: a connection cut mid-transfer runs none of it.
_RUN_VERIFIED = r"""umask 077
f=$(mktemp)
cat > "$f"
if [ "$(sha256sum < "$f" | cut -d' ' -f1)" != "$1" ]; then rm -f "$f"; echo "incomplete script" >&2; exit 98; fi
sh "$f"; rc=$?
rm -f "$f"
exit $rc
"""


def run_script(conn: Connection, script: str) -> Result:
    """Send ``script`` whole, verify it arrived intact, then run it (a cut connection does not stop it)."""
    data = script.encode()
    return conn.run(["sh", "-c", _RUN_VERIFIED, "sh", hashlib.sha256(data).hexdigest()], input=data)


# -- system changes: packages, accounts, directories ---------------------------------------------
_INSTALL = r"""
set -eu
export DEBIAN_FRONTEND=noninteractive
if [ -n "$1" ]; then printf '%s\n' "$1" | debconf-set-selections; fi
shift
if ! find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -360 | grep -q .; then
    apt-get -q -o DPkg::Lock::Timeout=120 update
fi
apt-get -q -y -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    install "$@"
"""


def _apply_system(conn: Connection, change: Change, progress: Progress | None) -> None:
    resource = change.resource
    if isinstance(resource, Packages):
        missing = list(change.data)
        names = " ".join(missing)
        if progress:
            progress(f"installing {names}")
        try:
            with display.LiveStatus(f"installing {names}", f"installed {names}") as status:
                conn.run(
                    ["sh", "-c", _INSTALL, "sh", "\n".join(resource.preseed), *missing],
                    on_output=progress or status,
                    timeout=1800,
                )
        except CommandError as exc:
            tail = "\n".join((exc.result.stdout + exc.result.stderr).strip().splitlines()[-12:])
            raise MailkitError(f"apt-get could not install {' '.join(missing)}:\n{tail}") from None
    elif isinstance(resource, SystemAccount):
        script = (
            'getent group "$2" >/dev/null || groupadd --system --gid "$4" "$2"\n'
            'getent passwd "$1" >/dev/null || useradd --system --uid "$3" --gid "$4" --home-dir "$5" '
            '--no-create-home --shell "$6" "$1"\n'
        )
        r = resource
        conn.run(["sh", "-ec", script, "sh", r.user, r.group, str(r.uid), str(r.gid), r.home, r.shell])
    elif isinstance(resource, Directory):
        d = resource
        conn.run(
            [
                "sh",
                "-ec",
                'mkdir -p -- "$1"; chown -- "$2" "$1"; chmod -- "$3" "$1"',
                "sh",
                d.path,
                f"{d.owner}:{d.group}",
                f"{d.mode:o}",
            ]
        )
    else:  # pragma: no cover - every phase-0 resource is handled above
        raise MailkitError(f"cannot apply {type(resource).__name__} as a system change")


# -- config changes: one script, backup first, atomic renames ------------------------------------
_PRELUDE = r"""set -eu
umask 077
b=$BACKUP
mkdir -p "$b"
exec 3>&1 >"$b/log" 2>&1
trap 'rc=$?; [ $rc = 0 ] || tail -n 20 "$b/log" >&3; exit $rc' EXIT
: > "$b/manifest"
printf 'backup %s\n' "$b" >> $PENDING
printf '%s\n' $SERVICES >> $PENDING
save() {
    n=$(wc -l < "$b/manifest")
    if [ -e "$1" ]; then cp -a -- "$1" "$b/$n"; printf '%s\t%s\n' "$n" "$1" >> "$b/manifest"
    else printf 'absent\t%s\n' "$1" >> "$b/manifest"; fi
}
put() {
    t="$1.mailkit-new"
    base64 -d > "$t"
    chown -- "$2:$3" "$t"
    chmod -- "$4" "$t"
    mv -f -- "$t" "$1"
}
"""

_RESTORE = r"""set -u
b=$1
[ -f "$b/manifest" ] || exit 0
tab=$(printf '\t')
while IFS="$tab" read -r n path; do
    if [ "$n" = absent ]; then rm -f -- "$path"
    else cp -a -- "$b/$n" "$path.mailkit-restore" && mv -f -- "$path.mailkit-restore" "$path"; fi
    printf '%s\n' "$path"
done < "$b/manifest"
"""


def _heredoc(data: bytes) -> str:
    encoded = base64.encodebytes(data).decode()
    return f"<<'MAILKIT_DATA'\n{encoded}MAILKIT_DATA\n"


def config_script(changes: list[Change], backup: str, services: list[str], state_dir: str = STATE_DIR) -> str:
    """The shell script that applies config changes. Order: files, tables (postmap), then postconf.

    Running ``postmap`` before ``postconf -e`` avoids Postfix's wait for a freshly written main.cf.
    """
    q = shlex.quote
    saves: list[str] = []
    writes: list[str] = []
    postfix_cmds: list[str] = []
    for change in changes:
        r = change.resource
        if isinstance(r, File):
            saves.append(f"save {q(r.path)}")
            writes.append(f"put {q(r.path)} {q(r.owner)} {q(r.group)} {r.mode:o} {_heredoc(r.data)}")
        elif isinstance(r, LookupTable):
            saves += [f"save {q(r.path)}", f"save {q(r.db_path)}"]
            writes.append(f"put {q(r.path)} root root 644 {_heredoc(r.content.encode())}")
            writes.append(f"postmap {q(r.reference)}")
        elif isinstance(r, Postconf):
            postfix_cmds.append(shlex.join(["postconf", "-e", *change.data]))
        elif isinstance(r, MasterService):
            postfix_cmds.append(shlex.join(["postconf", "-Me", f"{r.key}={r.entry}"]))
            for key, value in r.options.items():
                postfix_cmds.append(shlex.join(["postconf", "-Pe", f"{r.key}/{key}={value}"]))
            postfix_cmds.append(_drop_other_options(r))
    if postfix_cmds:
        saves += [f"save {q(path)}" for path in POSTFIX_CONFIG]
    prune = (
        f"ls -1d {q(state_dir)}/backups/*/ 2>/dev/null | sort | head -n -{KEEP_BACKUPS} | "
        'while read -r old; do rm -rf -- "$old"; done\n'
    )
    return (
        _PRELUDE.replace("$BACKUP", q(backup))
        .replace("$SERVICES", " ".join(q(name) for name in services) or "''")
        .replace("$PENDING", q(f"{state_dir}/pending-reload"))
        + "\n".join(saves)
        + "\n"
        + "".join(w if w.endswith("\n") else w + "\n" for w in writes)
        + "\n".join(postfix_cmds)
        + "\n"
        + prune
    )


def _drop_other_options(r: MasterService) -> str:
    """Remove ``-o`` options of the service that the desired state does not list."""
    keep = " ".join(shlex.quote(k) for k in r.options)
    return (
        f"for p in $(postconf -P {shlex.quote(r.key)} | sed 's|^[^/]*/[^/]*/\\([^ ]*\\) = .*|\\1|'); do "
        f'case " {keep} " in *" $p "*) ;; *) postconf -PX {shlex.quote(r.key)}/"$p" ;; esac; done'
    )


def _restore(conn: Connection, backup: str) -> list[str]:
    """Put back every file this apply saved (or remove the ones it created); return their paths."""
    result = conn.run(["sh", "-c", _RESTORE, "sh", backup], check=False)
    return [line for line in result.stdout.splitlines() if line]
