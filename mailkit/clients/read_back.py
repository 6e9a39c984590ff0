"""A message read back at another provider: the header of one message, found by a token, in a mailbox mailkit may
read over IMAP (TLS from the first byte, the certificate verified, the folder examined read-only).

This is how ``mailkit check --send-to`` learns what a real receiver made of the server's mail: the provider's own
``Authentication-Results`` are in the header it stored. The provider is a stranger: its answers are bounded (a
header of at most :data:`MAX_HEADER` bytes, a line of at most :data:`MAX_LINE`), its time too (``seconds`` in all).

>>> search_criteria("3f1c9a0b")
'(HEADER X-Mailkit-Check "3f1c9a0b")'
"""

from __future__ import annotations

import contextlib
import imaplib
import re
import socket
import ssl
import time
from dataclasses import dataclass

from mailkit.core.errors import MailkitError, UsageError
from mailkit.core.values import EmailAddress, Hostname, Password

#: The header field that carries the token, in the message sent and in the search.
TOKEN_HEADER = "X-Mailkit-Check"
#: The most bytes of one stored header read, and of one line of the server's answers.
MAX_HEADER = 64 * 1024
MAX_LINE = 8 * 1024
#: The longest one read waits for the provider, within the time asked in all.
READ_TIMEOUT = 30.0
#: Where a provider files a message: its inbox, or its spam folder (names differ; absent ones are passed over).
FOLDERS = ("INBOX", "Junk", "Spam", "[Gmail]/Spam")
_TOKEN = re.compile(r"[0-9a-f]{8,64}")


@dataclass(frozen=True)
class ReadAccount:
    """An account at another provider that mailkit may read: where to log in (IMAPS), as whom, with what password
    (an app password, at a big provider)."""

    host: Hostname
    user: EmailAddress
    password: Password
    port: int = 993

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise UsageError(f"IMAP port {self.port} is not a port")


def search_criteria(token: str) -> str:
    """The IMAP SEARCH for the one message that carries ``token`` (hex only: nothing else reaches the command)."""
    if not _TOKEN.fullmatch(token):
        raise UsageError("a read-back token is 8 to 64 hex digits")
    return f'(HEADER {TOKEN_HEADER} "{token}")'


class _Bounded(imaplib.IMAP4_SSL):
    """imaplib's IMAPS client with its reads bounded in size and in time (each read waits at most what is left
    before ``deadline``, a :func:`time.monotonic` value), connecting to an address found by mailkit's own lookup
    (the certificate still verified for the host's name)."""

    def __init__(self, name: str, address: str, port: int, context: ssl.SSLContext, deadline: float) -> None:
        self._name, self._address, self._deadline = name, address, deadline
        super().__init__(name, port, ssl_context=context, timeout=self._time_left())

    def _time_left(self) -> float:
        """Seconds a read may wait: what is left before the deadline, at most :data:`READ_TIMEOUT`."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the time asked has passed")
        return min(READ_TIMEOUT, left)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        raw = socket.create_connection((self._address, self.port), timeout)
        return self.ssl_context.wrap_socket(raw, server_hostname=self._name)

    def read(self, size: int) -> bytes:
        if size > MAX_HEADER + MAX_LINE:
            raise MailkitError(f"the IMAP server sent {size} bytes where a header of at most {MAX_HEADER} was asked")
        self.sock.settimeout(self._time_left())
        return super().read(size)

    def readline(self) -> bytes:
        self.sock.settimeout(self._time_left())
        line = self.file.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise MailkitError(f"the IMAP server sent a line longer than {MAX_LINE} bytes")
        if not line:
            raise imaplib.IMAP4.abort("socket error: EOF")
        return line


def _header_of(imap: imaplib.IMAP4, token: str) -> bytes | None:
    """The stored header of the message with ``token`` in any of :data:`FOLDERS`; None when it is in none yet."""
    for folder in FOLDERS:
        kind, _ = imap.select(f'"{folder}"', readonly=True)
        if kind != "OK":
            continue
        kind, found = imap.uid("SEARCH", search_criteria(token))
        uids = found[0].split() if kind == "OK" and found and found[0] else []
        if not uids or not uids[-1].isdigit():
            continue
        kind, parts = imap.uid("FETCH", uids[-1].decode(), f"(BODY.PEEK[HEADER]<0.{MAX_HEADER}>)")
        for part in parts if kind == "OK" else []:
            if isinstance(part, tuple) and len(part) == 2:
                return bytes(part[1])[:MAX_HEADER]
    return None


def read_back(
    account: ReadAccount,
    token: str,
    address: str,
    *,
    seconds: float = 120,
    ca_file: str | None = None,
    every: float = 3,
) -> bytes | None:
    """The header of the message carrying ``token`` in ``account``'s mailbox, asked for every ``every`` seconds until
    it is there or ``seconds`` have passed (None). ``address``: the IMAP host's address, from mailkit's lookup.
    ``seconds`` bounds it all, a provider's slow answers too (each read waits at most what is left). A login the
    provider refuses, a connection that fails, or answers that come too slowly are errors that say which."""
    search_criteria(token)
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    deadline = time.monotonic() + seconds
    try:
        imap = _Bounded(str(account.host), address, account.port, context, deadline)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise MailkitError(f"cannot reach {account.host}:{account.port} over IMAPS: {str(exc)[:200]}") from None
    try:
        try:
            imap.login(str(account.user), account.password.reveal())
        except imaplib.IMAP4.error:
            raise UsageError(f"{account.host} refused the login of {account.user} (an app password?)") from None
        while True:
            header = _header_of(imap, token)
            if header is not None or time.monotonic() + every > deadline:
                return header
            time.sleep(every)
    except TimeoutError:
        raise MailkitError(f"{account.host}:{account.port} did not answer within the {seconds:g} s asked") from None
    except (OSError, imaplib.IMAP4.error) as exc:
        raise MailkitError(f"{account.host}:{account.port} failed while it was read: {str(exc)[:200]}") from None
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            imap.logout()
        with contextlib.suppress(OSError):  # when the logout itself failed (imaplib closes only after it)
            imap.shutdown()
