"""One apply on the host as one shell script: back up, stage, check, commit, take effect, or restore.

The script knows stages, not resources: each change contributes fragments (see
:class:`mailkit.core.resources.base.Script`) and the services it touches. Stages, in order:

1. **backup**: every live path a change will touch is copied (owner and mode kept) into a
   private backup directory, or recorded as absent;
2. **stage**: candidates are written beside the live files under unique names;
3. **check**: validators run on the candidates. A rejection stops here: the candidates are removed
   and nothing live has changed;
4. **commit**: candidates are renamed over the live files (each file is old or new, never half);
5. **take effect**: touched services reload (or restart) in dependency order and must then be
   active and listening on their ports; if one is not, every saved path is restored, the services
   are restarted on their old config, and the script says what it really did.

Status lines go to the caller as ``@@ WORD ARG``; :func:`parse_status` reads them back.

>>> parse_status("@@ validated postfix\\n@@ reloaded postfix\\n").reloaded
['postfix']
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from mailkit.core.resources.base import Change, Script, SharedStage, service_steps
from mailkit.core.services import Service, in_order

#: Exit codes of the script: a validator refused a candidate (nothing live changed), or a service did
#: not come back after the change (the old files were restored).
REJECTED, FAILED = 97, 96
KEEP_BACKUPS = 20

_PRELUDE = r"""set -eu
umask 077
trap '' PIPE
b=$BACKUP
state=$STATE
mkdir -p "$b"
chmod 700 "$state" "$state/backups"
exec 3>&1 >>"$b/log" 2>&1
phase=stage
touch "$b/manifest" "$b/candidates" "$b/saved"
# What save and save_meta have recorded, kept in the shell too (a look-up costs no process), and how many.
saved='
'
saves=0
: > "$b/status"
finish() {
    rc=$?
    set +e
    if [ "$rc" != 0 ] && [ "$phase" = stage ]; then
        while read -r c; do rm -rf -- "$c"; done < "$b/candidates"
        printf '@@ unchanged\n' >> "$b/status"
    elif [ "$rc" != 0 ] && [ "$phase" = commit ]; then
        printf '@@ commit-failed\n' >> "$b/status"
        restore
        rm -f -- "$state/pending-reload"
    fi
    cat -- "$b/status" >&3
    if [ "$rc" != 0 ]; then printf '@@ log\n' >&3; tail -n 30 -- "$b/log" >&3; fi
    exit "$rc"
}
trap finish EXIT
data() { base64 -d; }
# A new private file beside $1 (same filesystem, so the final rename is atomic); removed on failure.
candidate() {
    d=${1%/*}
    c=$(mktemp -- "${d:-/}/.${1##*/}.mailkit-XXXXXX")
    printf '%s\n' "$c" >> "$b/candidates"
    printf '%s\n' "$c"
}
also_candidate() { printf '%s\n' "$1" >> "$b/candidates"; }
# The mode is padded to five digits: GNU chmod keeps a directory's setgid bit (inherited from a setgid
# parent such as /var/mail) unless the numeric mode names those bits too ("00750").
# A symbolic link is refused, never followed: chown and chmod through a link that another account planted
# would hand root's files to it.
own() {
    if [ -L "$1" ]; then printf 'refusing to own %s: it is a symbolic link\n' "$1" >&2; return 1; fi
    m=$4
    while [ "${#m}" -lt 5 ]; do m=0$m; done
    chown -h -- "$2:$3" "$1"; chmod -- "$m" "$1"
}
# Postfix re-reads a main.cf whose mtime is within about a second of "now" until it looks settled
# (up to ~2.5 s per command), so as never to parse a half-written file. Our candidates are written
# whole and only then renamed into place, so no reader can ever see half of one: dating them back a
# few seconds is safe, and spares every later postconf, postfix check and reload that wait.
settle() { touch -d "@$(( $(date +%s) - 3 ))" -- "$1"; }
# Paths hold no newline (mailkit refuses them), so one per line is a set; the pattern is quoted: literal.
first_save() {
    case $saved in *"
$1
"*) return 1 ;; esac
    saved="$saved$1
"
    printf '%s\n' "$1" >> "$b/saved"
}
# Record a live path before it changes: a copy (owner and mode kept), or that it was absent.
save() {
    first_save "$1" || return 0
    saves=$((saves + 1))
    if [ -e "$1" ] || [ -L "$1" ]; then
        cp -a -- "$1" "$b/$saves"
        printf 'copy\t%s\t%s\n' "$saves" "$1" >> "$b/manifest"
    else
        printf 'absent\t-\t%s\n' "$1" >> "$b/manifest"
    fi
}
# A directory that stays: only its owner and mode are recorded, never its content.
save_meta() {
    first_save "$1" || return 0
    if [ -e "$1" ]; then printf 'meta\t%s\t%s\n' "$(stat -c '%u:%g:%a' -- "$1")" "$1" >> "$b/manifest"
    else printf 'absent\t-\t%s\n' "$1" >> "$b/manifest"; fi
}
# check WHAT CMD...: a validator of candidates. If it fails, nothing live has changed.
check() {
    what=$1
    shift
    if "$@" > "$b/check.out" 2>&1; then
        printf '@@ validated %s\n' "$what" >> "$b/status"
    else
        rc=$?
        { printf '@@ rejected %s %s\n' "$what" "$rc"; cat -- "$b/check.out"; printf '@@ end\n'; } >> "$b/status"
        exit 97
    fi
}
# Put every saved path back, newest first, and report what really happened to each.
restore() {
    tac -- "$b/manifest" | while IFS=$(printf '\t') read -r kind arg path; do
        case $kind in
        copy)
            rm -rf -- "$path.mailkit-restore"
            if cp -a -- "$b/$arg" "$path.mailkit-restore" && { [ ! -d "$path" ] || rm -rf -- "$path"; } \
                && mv -f -- "$path.mailkit-restore" "$path"; then r=restored; else r=restore-failed; fi ;;
        absent) if rm -rf -- "$path"; then r=removed; else r=restore-failed; fi ;;
        meta)
            if [ ! -L "$path" ] && chown -h -- "${arg%:*}" "$path" && chmod -- "${arg##*:}" "$path"; then r=restored
            else r=restore-failed; fi ;;
        *) continue ;;
        esac
        printf '@@ %s %s\n' "$r" "$path" >> "$b/status"
    done
}
# running UNIT PROBE PORTS-COMMAND: the unit is active, the probe succeeds and every port listens.
# port_owned UNIT PORT: some process of UNIT listens on PORT (another program holding it does not count).
port_owned() {
    pids=$(ss -Hltnp "( sport = :$2 )" | grep -o 'pid=[0-9]*' | cut -d= -f2)
    [ -n "$pids" ] || { echo closed; return 1; }
    for pid in $pids; do
        grep -Eq "/$1([.@]|\$)" "/proc/$pid/cgroup" 2>/dev/null && return 0
    done
    echo "held by another program"
    return 1
}
# running UNIT PROBE PORTS TRIES: wait (TRIES x 0.2 s at most) until the unit is active, PROBE succeeds
# and its own processes listen on PORTS.
running() {
    i=0
    while :; do
        missing=
        st=$(systemctl is-active "$1" 2>/dev/null) || missing=" $1 ($st)"
        if [ -n "$2" ] && ! sh -c "$2" >/dev/null 2>&1; then missing="$missing '$2' failed"; fi
        if [ -n "$3" ]; then
            for p in $(sh -c "$3"); do
                owned=$(port_owned "$1" "$p") || missing="$missing port $p ($owned)"
            done
        fi
        [ -z "$missing" ] && return 0
        i=$((i + 1))
        # A unit that failed or stopped is given a second to come up; one still starting, its TRIES.
        case $st in failed | inactive | unknown | "") gone=yes ;; *) gone= ;; esac
        if [ "$i" -ge "$4" ] || { [ -n "$gone" ] && [ "$i" -ge 5 ]; }; then echo "not running:$missing"; return 1; fi
        sleep 0.2
    done
}
# effect NAME UNIT PROBE PORTS TRIES CMD...: make a service take its new config, then confirm it runs.
effect() {
    name=$1 unit=$2 probe=$3 ports=$4 tries=$5
    shift 5
    if "$@" > "$b/effect.out" 2>&1 && running "$unit" "$probe" "$ports" "$tries" >> "$b/effect.out" 2>&1; then
        printf '@@ reloaded %s\n' "$name" >> "$b/status"
        return 0
    fi
    {
        printf '@@ failed %s\n' "$name"
        cat -- "$b/effect.out"
        journalctl -u "$unit" -n 6 --no-pager -o cat 2>&1
        printf '@@ end\n'
    } >> "$b/status"
    return 1
}
"""


def _prelude(backup: str, state_dir: str) -> str:
    return _PRELUDE.replace("$BACKUP", shlex.quote(backup)).replace("$STATE", shlex.quote(state_dir))


def _take_effect(services: Sequence[Service], restart: set[str], state_dir: str) -> str:
    """Reload in order; on a failure restore, restart everything touched on its old config, and exit."""
    q = shlex.quote

    def call(svc: Service, command: Sequence[str]) -> str:
        tries = max(1, round(svc.start_seconds / 0.2))
        return f"effect {q(svc.name)} {q(svc.unit)} {q(svc.probe)} {q(svc.ports)} {tries} {shlex.join(command)}"

    go = " &&\n    ".join(call(s, s.apply_command(s.name in restart)) for s in services) or "true"
    back = "".join(
        f"    if {call(s, s.restart or s.reload)}; then printf '@@ recovered %s\\n' {q(s.name)} >> \"$b/status\"; "
        f"else printf '@@ down %s\\n' {q(s.name)} >> \"$b/status\"; fi\n"
        for s in services
    )
    pending = q(f"{state_dir}/pending-reload")
    return (
        f"phase=live\nif ! {{\n    {go}\n}}; then\n    restore\n{back}    rm -f -- {pending}\n    exit {FAILED}\nfi\n"
        f"rm -f -- {pending}\n"
    )


def _unique_shared(scripts: Sequence[Script]) -> list[SharedStage]:
    seen: dict[str, SharedStage] = {}
    for script in scripts:
        for stage in script.shared:
            seen.setdefault(stage.name, stage)
    return list(seen.values())


def transaction_script(changes: Sequence[Change], backup: str, state_dir: str) -> str:
    """The whole apply of ``changes`` (none of which has a ``run`` step) as one script."""
    scripts = [c.script(f"mk{i}") for i, c in enumerate(changes) if c.script is not None]
    shared = _unique_shared(scripts)
    steps = service_steps(changes)
    services = [svc for svc, _ in steps]
    restart = {svc.name for svc, restarts in steps if restarts}
    saves = [p for s in shared for p in s.backup] + [p for s in scripts for p in s.backup]
    pending = shlex.quote(f"{state_dir}/pending-reload")
    marker = "".join(f"printf '%s\\n' {shlex.quote(s.name)} >> {pending}\n" for s in services)
    prune = (
        f"ls -1d {shlex.quote(state_dir)}/backups/*/ 2>/dev/null | sort | head -n -{KEEP_BACKUPS} | "
        'while read -r old; do rm -rf -- "$old"; done\n'
    )
    return (
        _prelude(backup, state_dir)
        + "".join(f"save {shlex.quote(p)}\n" for p in dict.fromkeys(saves))
        + "".join(s.setup for s in shared)
        + "".join(s.stage for s in scripts)
        + "".join(s.check for s in scripts)
        + "".join(s.check for s in shared)
        + f"printf 'backup %s\\n' \"$b\" > {pending}\n"
        + marker
        + "phase=commit\n"
        + "".join(s.commit for s in scripts)
        + "".join(s.commit for s in shared)
        + _take_effect(services, restart, state_dir)
        + prune
    )


def finish_script(service_names: Sequence[str], backup: str, state_dir: str) -> str:
    """What an apply cut off after its commit left to do: make its services take effect."""
    return _prelude(backup, state_dir) + _take_effect(in_order(service_names), set(), state_dir)


@dataclass
class Status:
    """What the script reported."""

    validated: list[str] = field(default_factory=list)
    reloaded: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    restore_failed: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    down: list[str] = field(default_factory=list)
    rejected: str | None = None
    failed: str | None = None
    output: str = ""
    log: str = ""
    unchanged: bool = False
    commit_failed: bool = False


def parse_status(text: str) -> Status:
    status = Status()
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        word, _, arg = lines[i].removeprefix("@@ ").partition(" ")
        i += 1
        if not lines[i - 1].startswith("@@ "):
            continue
        if word in ("rejected", "failed"):
            body = []
            while i < len(lines) and lines[i] != "@@ end":
                body.append(lines[i])
                i += 1
            i += 1
            status.output = "\n".join(body).strip()
            setattr(status, word, arg.split(" ")[0])
        elif word == "log":
            status.log = "\n".join(lines[i:]).strip()
            break
        elif word in ("validated", "reloaded", "restored", "recovered", "down"):
            target = getattr(status, word)
            if arg not in target:
                target.append(arg)
        elif word == "removed":
            status.restored.append(arg)
        elif word == "restore-failed":
            status.restore_failed.append(arg)
        elif word == "unchanged":
            status.unchanged = True
        elif word == "commit-failed":
            status.commit_failed = True
    return status
