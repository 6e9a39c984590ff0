"""Logins over TLS from one source address, one connection each, run on the outside host with ``python3`` and its
standard library only: a password guesser, as the part 4 section on password guessing meets it, and the user after it.

The request arrives as JSON on standard input (the passwords with it, never on a command line): the server's name,
the protocol (``imaps`` on 993 or ``submissions`` on 465, both TLS from the first byte, verified against this host's
trust store), the user, the source address to send from, the passwords to try, and how: in order, stopping at the
first connection that is refused, or all at once (``at_once``, as a guesser with many connections does). The answer,
as JSON on standard output, is one entry per attempt: its outcome (``ok``, ``failed``: the server said no;
``refused``, ``timeout``, ``error``: the connection itself failed) and the seconds since the first attempt started.
"""

from __future__ import annotations

import contextlib
import imaplib
import json
import smtplib
import socket
import ssl
import sys
import threading
import time
from typing import Any

#: What a refused or dropped connection raises: the ban's signature.
REFUSED = (ConnectionRefusedError, ConnectionResetError, BrokenPipeError)


class _IMAP4_SSL(imaplib.IMAP4_SSL):
    """imaplib's IMAPS client, sending from a chosen source address."""

    def __init__(self, host: str, source: str, timeout: float, ssl_context: ssl.SSLContext) -> None:
        self._source = source
        super().__init__(host, 993, ssl_context=ssl_context, timeout=timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        raw = socket.create_connection((self.host, self.port), timeout, source_address=(self._source, 0))
        return self.ssl_context.wrap_socket(raw, server_hostname=self.host)


def context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def login(req: dict[str, Any], password: str) -> str:
    """One connection, one login: ``ok`` or ``failed`` (the server's no); connection failures raise."""
    host, source, timeout, user = req["host"], req["source"], float(req.get("timeout", 15)), req["user"]
    if req["protocol"] == "imaps":
        m = _IMAP4_SSL(host, source, timeout, context())
        try:
            m.login(user, password)
        except imaplib.IMAP4.error:
            return "failed"
        finally:
            with contextlib.suppress(OSError, imaplib.IMAP4.error):
                m.logout()
        return "ok"
    s = smtplib.SMTP_SSL(host, 465, timeout=timeout, context=context(), source_address=(source, 0))
    try:
        s.ehlo("outside.example.net")
        s.login(user, password)
    except smtplib.SMTPAuthenticationError:
        return "failed"
    finally:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            s.quit()
    return "ok"


def outcome(req: dict[str, Any], password: str) -> str:
    try:
        return login(req, password)
    except REFUSED:
        return "refused"
    except TimeoutError:
        return "timeout"
    except (OSError, smtplib.SMTPException, imaplib.IMAP4.error) as e:
        return "error: " + type(e).__name__


def main() -> None:
    req = json.load(sys.stdin)
    start = time.monotonic()
    attempts: list[dict[str, Any]] = []

    def attempt(password: str) -> dict[str, Any]:
        result = outcome(req, password)
        return {"outcome": result, "seconds": round(time.monotonic() - start, 3)}

    if req.get("at_once"):  # as a guesser with many connections: every password at the same time
        found: dict[int, dict[str, Any]] = {}
        threads = [
            threading.Thread(target=lambda i=i, p=p: found.__setitem__(i, attempt(p)), daemon=True)
            for i, p in enumerate(req["passwords"])
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        attempts = [found[i] for i in sorted(found)]
    else:
        for password in req["passwords"]:
            attempts.append(attempt(password))
            if req.get("stop_when_refused") and attempts[-1]["outcome"] in ("refused", "timeout"):
                break
    json.dump({"attempts": attempts}, sys.stdout)


if __name__ == "__main__":
    main()
