"""The aggregate reports a receiver sent that reached alice's mailbox (postmaster@example.org) on the lab's mail host:
what the report tests read at home, as ``mailkit reports`` and ``mailkit check`` do."""

from __future__ import annotations

import time
from collections.abc import Callable

from mailkit.domain.reports import Report, reports_in_message
from mailkit.lab.lab_target import lab_connection

ALICE_MAILDIR = "/var/vmail/example.org/alice"


def reports_at_home(subject: str, keep: Callable[[Report], bool], since: int, seconds: float = 60) -> list[Report]:
    """The reports ``keep`` accepts in messages of alice's Maildir (any folder) whose subject starts with ``subject``
    and that were saved since ``since`` (less a few seconds), each once; waiting up to ``seconds`` for one."""
    find = (
        f'find {ALICE_MAILDIR} -type f \\( -path "*/new/*" -o -path "*/cur/*" \\) -newermt "@{since - 5}" '
        f'-exec grep -l "^Subject: {subject}" {{}} + 2>/dev/null'
    )
    deadline = time.monotonic() + seconds
    with lab_connection("mail") as mail:
        while True:
            paths = mail.run(["sh", "-c", find], check=False).stdout.split()
            # One message once: moved from new/ to cur/ while listed, it is seen twice under the same unique name.
            # Not one report per report id: the lab's reporter files every day it is made to pass under today's
            # date, so its reports share an id (ci69-ci73 kept test_53's first report for its second so, by chance).
            messages = {path.rsplit("/", 1)[-1].split(":", 1)[0]: path for path in paths}
            made = [r for path in messages.values() for r in reports_in_message(mail.read(path)) if keep(r)]
            if made:
                return made
            if time.monotonic() > deadline:
                raise AssertionError(f"no report ({subject}) since {since} in {ALICE_MAILDIR} after {seconds:.0f} s")
            time.sleep(1)
