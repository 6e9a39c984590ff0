"""Logins over TLS from a chosen address on the outside host, one connection each (:mod:`mailkit.remote.tls_logins`):
how part 4 shows a password guesser banned, and a user from elsewhere let in meanwhile.

>>> attempts_from({"attempts": [{"outcome": "failed", "seconds": 2.0}, {"outcome": "refused", "seconds": 9.5}]}, 2)
[Attempt(outcome='failed', seconds=2.0), Attempt(outcome='refused', seconds=9.5)]
>>> attempts_from({"attempts": ["failed"]}, 1)
Traceback (most recent call last):
...
mailkit.core.errors.MailkitError: the login program answered "{'attempts': ['failed']}"
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailkit.clients.remote_client import run_program
from mailkit.core.errors import MailkitError
from mailkit.core.ssh import Connection
from mailkit.remote import source

PROGRAM = source("tls_logins")
PROTOCOLS = ("imaps", "submissions")
#: Outcomes that mean the connection itself was turned away (a ban), not the password.
TURNED_AWAY = ("refused", "timeout")


@dataclass(frozen=True)
class Attempt:
    """One login: ``ok``, ``failed`` (a wrong password said no), ``refused``/``timeout`` (no connection), or
    ``error: ...``; ``seconds`` since the first attempt started."""

    outcome: str
    seconds: float


def try_logins(
    outside: Connection,
    host: str,
    protocol: str,
    user: str,
    passwords: Sequence[str],
    source_address: str,
    stop_when_refused: bool = True,
    timeout: float = 30,
    at_once: bool = False,
) -> list[Attempt]:
    """Each password in turn, each on a new TLS connection from ``source_address`` (an address of ``outside``).
    ``at_once``: all passwords at the same time, each on its own connection. The passwords travel on the program's
    standard input, never on a command line."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
    request = {
        "host": host,
        "protocol": protocol,
        "user": user,
        "source": source_address,
        "passwords": list(passwords),
        "stop_when_refused": stop_when_refused,
        "timeout": timeout,
        "at_once": at_once,
    }
    answer = run_program(outside, PROGRAM, request, timeout=int(timeout * (1 if at_once else len(passwords)) + 60))
    return attempts_from(answer, len(passwords))


def attempts_from(answer: object, most: int) -> list[Attempt]:
    """The program's answer read as hostile: at most ``most`` attempts, each an outcome and a number of seconds."""
    attempts = answer.get("attempts") if isinstance(answer, dict) else None
    try:
        if not isinstance(attempts, list) or len(attempts) > most:
            raise TypeError
        return [Attempt(str(a["outcome"])[:80], float(a["seconds"])) for a in attempts]
    except (TypeError, KeyError, ValueError):
        raise MailkitError(f"the login program answered {str(answer)[:200]!r}") from None
