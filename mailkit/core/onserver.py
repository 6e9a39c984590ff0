"""Commands a reader would type on the server, run for them and shown as a terminal shows them.

The day-two skills (query a map, read the queue, read the log) are taught by running the real commands,
not by describing them. Output passes through the redactor, like every plan.

>>> print(Shown((("postqueue -p", "Mail queue is empty"),)))
$ postqueue -p
Mail queue is empty
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from mailkit.core.facts import Runner
from mailkit.core.redact import redact


@dataclass(frozen=True)
class Shown:
    """Each command (as one would type it) with what it printed."""

    runs: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        return "\n".join(f"$ {command}\n{output}".rstrip() for command, output in self.runs)

    __repr__ = __str__


def on_server(conn: Runner, *commands: Sequence[str]) -> Shown:
    """Run each argv on ``conn`` (a failure is shown, not raised: a refusal is part of the lesson)."""
    runs = []
    for argv in commands:
        result = conn.run(list(argv), check=False)
        printed = [(result.stdout + result.stderr).rstrip()] + ([f"(exit {result.exited})"] if result.exited else [])
        runs.append((shlex.join(argv), redact("\n".join(p for p in printed if p))))
    return Shown(tuple(runs))
