"""Logins over TLS from a chosen address on the outside host, one connection each (:mod:`mailkit.remote.tls_logins`):
how part 4 shows a password guesser banned, and a user from elsewhere let in meanwhile.

>>> first_refused([Attempt("failed", 2.0), Attempt("refused", 9.5)])
Attempt(outcome='refused', seconds=9.5)
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
    attempts = answer.get("attempts")
    if not isinstance(attempts, list) or len(attempts) > len(passwords):
        raise MailkitError(f"the login program on {outside!r} answered {str(answer)[:200]!r}")
    return [Attempt(str(a.get("outcome", "?"))[:80], float(a.get("seconds", 0))) for a in attempts]


def first_refused(attempts: Sequence[Attempt]) -> Attempt | None:
    """The first attempt whose connection was turned away, if any."""
    return next((a for a in attempts if a.outcome in TURNED_AWAY), None)
