"""What systemd remembers of the nightly backup (the chapter's ``mailkit-backup`` timer and service), read over SSH:
whether the timer is on, and how the last run ended and when. Reading only; the rules that judge it are
:func:`mailkit.server.rules.backup_timer`, :func:`~mailkit.server.rules.backup_result` and
:func:`~mailkit.server.rules.backup_age`.

>>> parse_show("Result=success\\nExecMainStatus=0\\nExecMainExitTimestamp=@1796526900\\nUnitFileState=x\\n")
{'Result': 'success', 'ExecMainStatus': '0', 'ExecMainExitTimestamp': '@1796526900'}
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailkit.core.ssh import Connection

#: The backup's systemd units (the chapter writes them; one name, read here and written there).
UNIT = "mailkit-backup"
_SHOWN = ("Result", "ExecMainStatus", "ExecMainExitTimestamp")


@dataclass(frozen=True)
class BackupRuns:
    """The timer's state (``is-enabled``, ``is-active``), the service's last result and exit status, and the
    seconds since that run ended (None: it never ran since boot)."""

    installed: bool
    enabled: str = ""
    active: str = ""
    result: str = ""
    status: str = ""
    seconds_ago: float | None = None


def parse_show(text: str) -> dict[str, str]:
    """``systemctl show -p ...`` output: the properties asked for, each value bounded and plain."""
    shown = {}
    for line in text.splitlines()[:20]:
        name, _, value = line.partition("=")
        if name in _SHOWN and re.fullmatch(r"[\w@.:+ -]{0,80}", value):
            shown[name] = value
    return shown


def read_backup_runs(conn: Connection) -> BackupRuns:
    """What systemd says of the backup on ``conn``'s server; ``installed`` False when there is no timer."""
    script = f"""systemctl cat {UNIT}.timer >/dev/null 2>&1 || exit 3
systemctl is-enabled {UNIT}.timer; systemctl is-active {UNIT}.timer
systemctl show --timestamp=unix -p Result -p ExecMainStatus -p ExecMainExitTimestamp {UNIT}.service
date +%s"""
    found = conn.run(["sh", "-c", script], check=False, timeout=30)
    if found.exited == 3:
        return BackupRuns(installed=False)
    lines = found.stdout.splitlines()
    if len(lines) < 3:
        return BackupRuns(installed=True)
    shown = parse_show("\n".join(lines[2:-1]))
    now, ended = lines[-1].strip(), shown.get("ExecMainExitTimestamp", "").lstrip("@")
    seconds = int(now) - int(ended) if now.isdigit() and ended.isdigit() and int(ended) > 0 else None
    return BackupRuns(
        True, lines[0].strip()[:40], lines[1].strip()[:40], shown.get("Result", ""), shown.get("ExecMainStatus", ""),
        seconds,
    )  # fmt: skip
