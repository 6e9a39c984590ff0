"""The value a command returns: what it printed and how it exited.

>>> r = Result("true", "", "", 0)
>>> r.ok, r.failed
(True, False)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    """Outcome of one command, on the machine or on a remote host."""

    command: str
    stdout: str
    stderr: str
    exited: int

    @property
    def ok(self) -> bool:
        return self.exited == 0

    @property
    def failed(self) -> bool:
        return not self.ok
