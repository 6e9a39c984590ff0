"""What a mail server looks like from the internet: ports, TLS, AUTH and relaying, seen from one vantage point.

The probe below uses only Python's standard library, so it runs on this machine or on any host with ``python3``
(``mailkit check --from``). It sends no password at all and no message: relay attempts stop at ``RCPT TO`` and are
reset, so checking a server never changes it. The ports it looks at are the parts' (``guide.chapters.PORTS``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from mailkit.clients.reach import DROPPED_AFTER
from mailkit.core.errors import MailkitError
from mailkit.core.ssh import Connection
from mailkit.remote import source

#: The probe's bounds: a server it checks is hostile until shown otherwise. Whole run (seconds), memory
#: (address space, bytes), what one connection may send (bytes) and how many lines one reply may have.
DEADLINE, MEMORY, CONNECTION_BYTES, REPLY_LINES = 120, 512 * 1024 * 1024, 256 * 1024, 200

#: The program itself (:mod:`mailkit.remote.probe`), as it is sent.
PROBE = source("probe")


def run_probe(request: dict[str, Any], vantage: Connection | None, *, deadline: int = DEADLINE) -> dict[str, Any]:
    """Run the probe on ``vantage`` (over SSH, as the login user: it needs no privileges) or, when None, on this
    machine; return what it saw. Past ``deadline`` seconds it reports what it saw until then and ends."""
    bounds = {
        "deadline": deadline,
        "memory": MEMORY,
        "connection_bytes": CONNECTION_BYTES,
        "reply_lines": REPLY_LINES,
        "dropped_after": DROPPED_AFTER,
    }
    payload = json.dumps({**request, **bounds})
    # Should it hang all the same, it is killed where it runs (``timeout``), and this side stops waiting.
    python = sys.executable if vantage is None else "python3"
    argv = ["timeout", "-k", "5", str(deadline + 10), python, "-c", PROBE]
    if vantage is None:
        try:
            done = subprocess.run(argv, input=payload, capture_output=True, text=True, timeout=deadline + 30)
        except subprocess.TimeoutExpired:
            raise MailkitError(f"the outside probe did not end within {deadline + 30} s") from None
        stdout, stderr = done.stdout, done.stderr
    else:
        result = vantage.run(argv, input=payload, check=False, timeout=deadline + 30, sudo=False)
        stdout, stderr = result.stdout, result.stderr
    try:
        return json.loads(stdout)
    except ValueError:
        raise MailkitError(f"the outside probe failed: {stderr.strip()[-500:]}") from None
