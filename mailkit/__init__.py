"""mailkit: the self-hosted mail server guide, executable.

>>> from mailkit import Connection, Result
"""

from mailkit.errors import CommandError, HostKeyError, LabError, MailkitError, UsageError
from mailkit.result import Result
from mailkit.ssh import Connection
from mailkit.target import connect, resolve_target

__all__ = [
    "CommandError",
    "Connection",
    "HostKeyError",
    "LabError",
    "MailkitError",
    "Result",
    "UsageError",
    "connect",
    "resolve_target",
]
__version__ = "0.1.0"
