"""Exceptions mailkit raises. Each carries what a reader needs to fix the problem.

>>> str(MailkitError("lab is not up"))
'lab is not up'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailkit.core.result import Result


class MailkitError(Exception):
    """Base class: a problem mailkit explains in one line."""


class UsageError(MailkitError):
    """The request cannot be carried out here (not root, missing tool, unknown release)."""


class LabError(MailkitError):
    """Building, starting or stopping the lab failed."""


class CommandError(MailkitError):
    """A command exited non-zero; ``result`` holds its output and exit code."""

    def __init__(self, result: Result) -> None:
        self.result = result
        detail = (result.stderr or result.stdout).strip()
        tail = detail.splitlines()[-1] if detail else "no output"
        super().__init__(f"{result.command!r} exited {result.exited}: {tail}")


class HostKeyError(MailkitError):
    """The SSH host key is unknown or does not match known_hosts."""


class ConnectionLost(MailkitError):
    """The SSH transport dropped and could not be re-opened."""


class StateConflict(MailkitError):
    """The host's current state forbids the change asked for (e.g. adding an address that exists)."""
