"""mailkit: the self-hosted mail server guide, executable.

>>> from mailkit import Connection, Result
"""

from typing import TYPE_CHECKING

from mailkit.core.errors import CommandError, HostKeyError, LabError, MailkitError, UsageError
from mailkit.core.result import Result
from mailkit.core.ssh import Connection

if TYPE_CHECKING:  # on first use (below): every command-line call imports this package, few need a target
    from mailkit.server.target import Target, connect, resolve_target, target_of

__all__ = [
    "CommandError",
    "Connection",
    "HostKeyError",
    "LabError",
    "MailkitError",
    "Result",
    "Target",
    "UsageError",
    "connect",
    "describe",
    "resolve_target",
    "target_of",
]
__version__ = "0.1.0"


def describe(conn: Connection) -> str:
    """One line about the target: its name, Debian release and mail stack versions.

    >>> describe(mail)  # doctest: +SKIP
    'mail.example.org: Debian trixie, postfix not installed, dovecot not installed'
    """
    from mailkit.core.context import host_facts

    facts = host_facts(conn)
    name = conn.run(["hostname", "-f"]).stdout.strip()
    postfix = f"postfix {facts.postfix_version}" if facts.postfix_version else "postfix not installed"
    dovecot = f"dovecot {facts.dovecot_version}" if facts.dovecot_version else "dovecot not installed"
    return f"{name}: Debian {facts.release}, {postfix}, {dovecot}"


def __getattr__(name: str) -> object:
    """``mk.engine``, ``mk.checks``...: submodules on first use, so ``import mailkit`` stays light."""
    import importlib

    where = {"smtp": "mailkit.clients.smtp", "dnsrecords": "mailkit.domain.records"}
    if name in ("engine", "checks", "resources", "smtp", "values", "templates", "facts", "dnsrecords"):
        return importlib.import_module(where.get(name, f"mailkit.core.{name}"))
    if name in ("Target", "connect", "resolve_target", "target_of"):
        return getattr(importlib.import_module("mailkit.server.target"), name)
    if name == "on_server":
        return importlib.import_module("mailkit.core.onserver").on_server
    raise AttributeError(name)
