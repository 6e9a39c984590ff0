"""Reading a message back at another provider (``mailkit check --send-to``): the IMAP client against a small IMAPS
server on loopback that plays the provider, well-behaved and hostile; and the row from what was read.

The real provider is the lab's (tests/lab/test_80_check.py): this one only plays the answers mailkit must cope with.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailkit.clients.read_back import MAX_HEADER, ReadAccount, read_back, search_criteria
from mailkit.core.errors import MailkitError, UsageError
from mailkit.core.values import EmailAddress, Hostname, Password
from mailkit.status.sending import read_back_row
from tests.loopback import serve

HOST = "imap.example.net"
PASSWORD = "an app password, 24 chars"
TOKEN = "0123456789abcdef"
HEADER = (
    b"Authentication-Results: mx.example.net; dmarc=pass header.from=example.org\r\n"
    b"Authentication-Results: mx.example.net; dkim=pass header.d=example.org header.s=s1;\r\n"
    b"\tspf=pass smtp.mailfrom=example.org\r\n"
    b"Authentication-Results: mx.example.net; spf=fail (written by the sender: not the provider's word)\r\n"
    b"From: postmaster@example.org\r\nX-Mailkit-Check: 0123456789abcdef\r\n\r\n"
)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("imap")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def provider(
    header: bytes, *, folder: str = "INBOX", literal: int | None = None, slow: float = 0
) -> Callable[[socket.socket], None]:
    """An IMAP server's answers: ``header`` stored in ``folder`` as UID 7; ``literal``: the size it claims for it;
    ``slow``: seconds it waits before each answer."""

    def handle(sock: socket.socket) -> None:
        f = sock.makefile("rb")
        sock.sendall(b"* OK ready\r\n")
        selected = ""
        while line := f.readline():
            time.sleep(slow)
            tag, _, rest = line.decode().rstrip("\r\n").partition(" ")
            command = rest.split(" ", 1)[0].upper()
            if command == "CAPABILITY":
                sock.sendall(f"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n{tag} OK done\r\n".encode())
            elif command == "LOGIN":
                ok = PASSWORD in rest
                sock.sendall(f"{tag} {'OK done' if ok else 'NO [AUTHENTICATIONFAILED] no'}\r\n".encode())
            elif command in ("SELECT", "EXAMINE"):
                selected = rest.split(" ", 1)[1].strip('"')
                known = selected in ("INBOX", "Junk")
                said = f"* 1 EXISTS\r\n{tag} OK [READ-ONLY] done" if known else f"{tag} NO no such"
                sock.sendall(f"{said}\r\n".encode())
            elif command == "UID" and "SEARCH" in rest.upper():
                found = " 7" if selected == folder and TOKEN in rest else ""
                sock.sendall(f"* SEARCH{found}\r\n{tag} OK done\r\n".encode())
            elif command == "UID" and "FETCH" in rest.upper():
                size = len(header) if literal is None else literal
                sock.sendall(f"* 1 FETCH (UID 7 BODY[HEADER]<0> {{{size}}}\r\n".encode() + header + b")\r\n")
                sock.sendall(f"{tag} OK done\r\n".encode())
            elif command == "LOGOUT":
                sock.sendall(f"* BYE\r\n{tag} OK done\r\n".encode())
                return
            else:
                sock.sendall(f"{tag} BAD unknown\r\n".encode())

    return handle


def imaps(certificate: tuple[Path, Path], handle: Callable[[socket.socket], None]) -> Iterator[int]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    yield from serve(handle, wrap=context, timeout=5)


def account(port: int, password: str = PASSWORD) -> ReadAccount:
    return ReadAccount(Hostname(HOST), EmailAddress("me@example.net"), Password(password), port=port)


def lookup(name: str, rtype: str) -> list[str]:
    return ["127.0.0.1"] if (name, rtype) == (HOST, "A") else []


def test_the_header_is_found_in_the_spam_folder_and_judged_by_the_providers_own_verdicts(
    certificate: tuple[Path, Path],
) -> None:
    for port in imaps(certificate, provider(HEADER, folder="Junk")):
        row = read_back_row(account(port), TOKEN, "example.org", lookup, ca_file=str(certificate[0]), seconds=5)
        assert row.ok and row.detail == "mx.example.net: spf=pass, dkim=pass (example.org), dmarc=pass", row


def test_a_message_not_there_a_refused_login_and_an_untrusted_certificate_are_each_said(
    certificate: tuple[Path, Path],
) -> None:
    for port in imaps(certificate, provider(HEADER, folder="Archive")):  # nowhere mailkit looks
        row = read_back_row(account(port), TOKEN, "example.org", lookup, ca_file=str(certificate[0]), seconds=1)
        assert not row.ok and row.detail.startswith("not in me@example.net's mailbox after 1 s"), row
    for port in imaps(certificate, provider(HEADER)):
        with pytest.raises(UsageError, match=r"refused the login of me@example\.net"):
            read_back(account(port, "not the password!"), TOKEN, "127.0.0.1", seconds=1, ca_file=str(certificate[0]))
        row = read_back_row(account(port), TOKEN, "example.org", lookup, seconds=1)  # the system's CAs only
        assert not row.ok and row.detail.startswith("cannot tell: cannot reach imap.example.net"), row
        assert "CERTIFICATE_VERIFY_FAILED" in row.detail


def test_a_provider_that_sends_more_than_a_header_is_cut_off(certificate: tuple[Path, Path]) -> None:
    huge = 50 * 1024 * 1024
    for port in imaps(certificate, provider(HEADER, literal=huge)):
        with pytest.raises(MailkitError, match=f"sent {huge} bytes where a header of at most {MAX_HEADER}"):
            read_back(account(port), TOKEN, "127.0.0.1", seconds=2, ca_file=str(certificate[0]))


def test_a_provider_that_answers_each_command_just_in_time_is_still_bounded_in_all(
    certificate: tuple[Path, Path],
) -> None:
    # Each answer well inside one read's timeout, but a poll over four folders would take 6 s: the 3 s asked win.
    for port in imaps(certificate, provider(HEADER, folder="Archive", slow=0.8)):
        start = time.monotonic()
        with pytest.raises(MailkitError, match="did not answer within the 3 s asked"):
            read_back(account(port), TOKEN, "127.0.0.1", seconds=3, ca_file=str(certificate[0]))
        assert time.monotonic() - start < 5


def test_only_a_hex_token_reaches_the_search() -> None:
    assert search_criteria(TOKEN) == '(HEADER X-Mailkit-Check "0123456789abcdef")'
    with pytest.raises(UsageError):
        search_criteria('x") OR ALL ("')
