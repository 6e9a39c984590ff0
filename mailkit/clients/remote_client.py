"""SMTP and IMAP conversations run *on the outside host* with Python's smtplib and imaplib.

The client program (:mod:`mailkit.remote.client`) uses only the standard library; it is sent to ``python3`` on
the other host, and its request (including any password) travels on standard input, never on a command line. TLS
is verified against the other host's trust store (the lab CA is in it) and the server's host name.

A real credential never crosses an unencrypted connection: a request in ``plain`` mode that carries a
password is refused unless it says the credential is a throwaway one (:func:`throwaway_login`).

>>> sorted(run_client.__annotations__)
['outside', 'request', 'return']
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from mailkit.core.errors import MailkitError, UsageError
from mailkit.core.ssh import Connection
from mailkit.remote import source

#: The client program itself (:mod:`mailkit.remote.client`), as it is sent.
CLIENT = source("client")
#: The most conversations in one batch (the program's own bound, ``MAX_BATCH`` there).
MAX_BATCH = 32


def throwaway_login(domain: str) -> dict[str, Any]:
    """A user and password that exist nowhere, for probing what a server does with cleartext.

    >>> login = throwaway_login("example.org")
    >>> login["user"].startswith("mailkit-probe-") and login["user"].endswith("@example.org"), login["throwaway"]
    (True, True)
    """
    return {
        "user": f"mailkit-probe-{secrets.token_hex(4)}@{domain}",
        "password": secrets.token_urlsafe(18),
        "throwaway": True,
    }


def run_client(outside: Connection, request: dict[str, Any]) -> dict[str, Any]:
    """Run one SMTP or IMAP conversation from ``outside``; return what it saw (see ``CLIENT``)."""
    _refuse_cleartext_password(request)
    return run_program(outside, CLIENT, request)


def run_clients(outside: Connection, requests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run several conversations from ``outside`` at the same time, in one program (one SSH round trip, one
    Python): what each saw, in the order asked. Only conversations that do not depend on each other belong in
    one batch (a message sent and then looked for are two batches).

    >>> run_clients(None, [{"protocol": "imap", "mode": "plain", "password": "real"}])  # type: ignore[arg-type]
    Traceback (most recent call last):
    ...
    mailkit.core.errors.UsageError: a real password is never sent without TLS: use throwaway_login() to probe cleartext
    """
    if not 1 <= len(requests) <= MAX_BATCH:
        raise UsageError(f"a batch holds 1 to {MAX_BATCH} conversations, not {len(requests)}")
    for request in requests:
        _refuse_cleartext_password(request)
    answers: object = run_program(outside, CLIENT, {"batch": list(requests)})
    if not isinstance(answers, list) or len(answers) != len(requests) or not all(isinstance(a, dict) for a in answers):
        raise MailkitError(
            f"the client on {outside!r} answered {str(answers)[:200]!r}, not one answer per conversation"
        )
    return answers


def _refuse_cleartext_password(request: dict[str, Any]) -> None:
    if request.get("mode") == "plain" and request.get("password") and not request.get("throwaway"):
        raise UsageError("a real password is never sent without TLS: use throwaway_login() to probe cleartext")


def run_program(outside: Connection, program: str, request: dict[str, Any], timeout: int = 180) -> dict[str, Any]:
    """Run a standard-library Python ``program`` on ``outside``: the request (passwords too) on its standard
    input as JSON, never on a command line; its JSON answer back."""
    result = outside.run(["python3", "-c", program], input=json.dumps(request), check=False, timeout=timeout)
    try:
        return json.loads(result.stdout)
    except ValueError:
        raise MailkitError(f"the client on {outside!r} failed: {result.stderr.strip()[-500:]}") from None
