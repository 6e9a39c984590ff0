"""What a lab host's Postfix logged about a message: the report tests wait on it (one helper for both)."""

from __future__ import annotations

import shlex
import time

from mailkit.core.ssh import Connection


def wait_for_status(
    conn: Connection, since: int, recipient: str, status: str = "", seconds: float = 60, *, flush: bool = False
) -> str:
    """The first line Postfix on ``conn`` logged since ``since`` (epoch seconds) saying a message to ``recipient``
    went with ``status`` (``sent``, ``deferred``, ...; empty: any); ``flush``: its queue flushed every few seconds
    meanwhile (a deferred message waits minutes for its next try). An assertion error after ``seconds``."""
    script = (
        f"journalctl -u 'postfix*' --since @{int(since)} -o cat | grep -F {shlex.quote(f'to=<{recipient}>')} | "
        f"grep -F {shlex.quote(f'status={status}')} | head -n 1"
    )
    deadline = time.monotonic() + seconds
    flushed = 0.0
    while True:
        if flush and time.monotonic() - flushed > 5:
            conn.run(["postqueue", "-f"])
            flushed = time.monotonic()
        said = conn.run(["sh", "-c", script]).stdout.strip()
        if said:
            return said
        assert time.monotonic() < deadline, f"no message to {recipient} {status or 'with a status'} since {since}"
        time.sleep(0.5)
