"""The outside probe: what a mail server shows the internet (ports, TLS, AUTH, relaying), read from one vantage point.

It runs on the host the checks run from, with ``python3`` and its standard library only, as the login user: the
request arrives as JSON on standard input, the answer leaves as JSON on standard output. It sends no password and
no message. The server it probes is hostile until shown otherwise: one connection may send so many bytes, one reply
so many lines, the whole run has one deadline and a memory limit (:mod:`mailkit.status.vantage` sets them).
"""

from __future__ import annotations

import contextlib
import hashlib
import imaplib
import json
import os
import resource
import signal
import smtplib
import socket
import ssl
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

#: The request (read in :func:`main`) and what was seen so far (written out at the end, or at the deadline).
req: dict[str, Any] = {}
out: dict[str, Any] = {"ports": {}, "closed": {}, "tls": {}, "relay": [], "roles": []}


def give_up(signum: int, frame: object) -> None:
    """The whole probe's deadline: say so, with what was seen until then."""
    out["error"] = f"the probe gave up after {req['deadline']} s"
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)


class TooMuch(OSError):
    """The server sent more than one connection may."""


class Budget:
    """What one connection has sent so far."""

    budget: int
    lines: int


class Bounded:
    """A server's replies, read through a budget: one connection may send so many bytes, one reply so many lines."""

    def __init__(self, raw: Any, owner: Any) -> None:
        self.raw, self.owner = raw, owner

    def _count(self, data: bytes) -> bytes:
        self.owner.budget = getattr(self.owner, "budget", req["connection_bytes"]) - len(data)
        if self.owner.budget < 0:
            raise TooMuch(f"the server sent more than {req['connection_bytes']} bytes")
        return data

    def readline(self, size: int = -1) -> bytes:
        line = self._count(self.raw.readline(min(size, 8192) if size and size > 0 else 8192))
        self.owner.lines = getattr(self.owner, "lines", 0) + 1
        if self.owner.lines > req["reply_lines"]:
            raise TooMuch(f"the server sent more than {req['reply_lines']} lines")
        return line

    def read(self, size: int = -1) -> bytes:
        return self._count(self.raw.read(min(size, req["connection_bytes"]) if size and size > 0 else 8192))

    def close(self) -> None:
        self.raw.close()


class BoundedReplies:
    """smtplib's replies read through a :class:`Bounded` budget (mixed into its clients below)."""

    file: Any
    sock: Any
    lines: int

    def getreply(self) -> tuple[int, bytes]:
        if self.file is None and self.sock is not None:
            self.file = Bounded(self.sock.makefile("rb"), self)
        self.lines = 0
        return super().getreply()  # type: ignore[misc]


class KeepsGreeting:
    """An smtplib client that keeps the server's greeting (the 220 line's text)."""

    greeting = b""

    def connect(self, host: str = "localhost", port: int = 0, source_address: Any = None) -> tuple[int, bytes]:
        code, text = super().connect(host, port, source_address)  # type: ignore[misc]
        self.greeting = text
        return code, text


class SMTP(KeepsGreeting, BoundedReplies, smtplib.SMTP):
    """smtplib's client, bounded."""


class SMTPS(KeepsGreeting, BoundedReplies, smtplib.SMTP_SSL):
    """TLS on connect to an address, the certificate verified for the server's name; bounded."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = socket.create_connection((host, port), timeout)
        return self.context.wrap_socket(sock, server_hostname=req["hostname"])


class IMAP(imaplib.IMAP4):
    """imaplib's client, its replies read through a :class:`Bounded` budget."""

    def readline(self) -> bytes:
        return Bounded(self.file, self).readline(imaplib._MAXLINE)  # type: ignore[attr-defined]

    def read(self, size: int) -> bytes:
        return Bounded(self.file, self).read(size)


def context() -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=req.get("cafile"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


#: How long a port that should be served may take to answer a connection (a slow server still answers).
OPEN_WITHIN = 8


def state(address: str, port: int, timeout: float = OPEN_WITHIN) -> str:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((address, port))
        return "open"
    except ConnectionRefusedError:
        return "closed"
    except TimeoutError:
        return "filtered"
    except OSError as e:
        return "unreachable: " + (e.strerror or str(e))
    finally:
        s.close()


def states_at_once(probes: dict[str, list[int]]) -> Callable[[], dict[str, dict[str, str]]]:
    """Start probing the ports a server should not serve, on every address at once, and return a function that
    waits for the states: a firewall that drops them makes each probe wait for the whole timeout, which would add
    up one after the other, so they wait side by side and while the other checks run."""
    found: dict[str, dict[str, str]] = {address: {} for address in probes}

    def one(address: str, port: int) -> None:
        found[address][str(port)] = state(address, port, req["dropped_after"])

    threads = [
        threading.Thread(target=one, args=(address, port), daemon=True)
        for address, ports in probes.items()
        for port in ports
    ]
    for t in threads:
        t.start()

    def states() -> dict[str, dict[str, str]]:
        for t in threads:
            t.join()
        return found

    return states


#: What a server is asked, each offered alone by a client of its own. To refuse: TLS 1.0 and 1.1 (RFC 8996), and at
#: TLS 1.2 only the cipher suites the NCSC guidelines call insufficient (no authentication, no encryption,
#: export-grade, RC4, DES and 3DES, MD5 MACs), at OpenSSL's security level 0 so that this client can offer them at
#: all. And finite-field Diffie-Hellman (DHE) alone, at security level 2: this client then refuses a group under
#: 2048 bits itself (``DH_KEY_TOO_SMALL``), which is how the group's size is seen; a server that offers no DHE
#: refuses the offer (its key exchange is ECDHE, on curves OpenSSL chooses).
ALL_AT_LEVEL_0 = "ALL:@SECLEVEL=0"
INSUFFICIENT_CIPHERS = "aNULL:eNULL:EXPORT:LOW:RC4:DES:3DES:MD5:@SECLEVEL=0"
DHE_AT_LEVEL_2 = "kDHE:!aNULL:!eNULL:@SECLEVEL=2"
OFFERS = {
    "TLSv1": ("TLSv1", ALL_AT_LEVEL_0),
    "TLSv1_1": ("TLSv1_1", ALL_AT_LEVEL_0),
    "insufficient_ciphers": ("TLSv1_2", INSUFFICIENT_CIPHERS),
    "dhe": ("TLSv1_2", DHE_AT_LEVEL_2),
}


def offer_context(version: str, ciphers: str) -> ssl.SSLContext | None:
    """A client that offers only ``version`` and ``ciphers``; None when this OpenSSL cannot (then the probe cannot
    tell, and says so: a check that cannot fail must not pass)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # no certificate is judged here
            ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version)
            ctx.set_ciphers(ciphers)
        except (ssl.SSLError, ValueError, AttributeError):
            return None
    return ctx


def plain_starttls(kind: str, f: Any, sock: socket.socket) -> None:
    """Ask for STARTTLS in the clear the way ``kind`` (smtp, imap, sieve) does; an OSError when refused."""

    def reply(last: Callable[[str], bool]) -> str:
        while True:
            line = f.readline().decode(errors="replace").rstrip()
            if not line:
                raise OSError("the server closed the connection")
            if last(line):
                return line

    if kind == "smtp":
        reply(lambda line: line[3:4] != "-")
        sock.sendall(f"EHLO {req['helo']}\r\n".encode())
        reply(lambda line: line[3:4] != "-")
        sock.sendall(b"STARTTLS\r\n")
        said = reply(lambda line: line[3:4] != "-")
        ready = said.startswith("220")
    elif kind == "imap":
        reply(lambda line: line.startswith("* "))
        sock.sendall(b"a STARTTLS\r\n")
        said = reply(lambda line: line.startswith("a "))
        ready = said.upper().startswith("A OK")
    else:
        reply(lambda line: line.upper().startswith(("OK", "NO", "BYE")))
        sock.sendall(b"STARTTLS\r\n")
        said = reply(lambda line: line.upper().startswith(("OK", "NO", "BYE")))
        ready = said.upper().startswith("OK")
    if not ready:
        raise OSError("STARTTLS refused: " + said[:100])


def refused_offers(address: str, port: int, how: str) -> dict[str, str]:
    """For each of :data:`OFFERS`: "refused: ...", "ACCEPTED: <version> <cipher>", "untestable: ..." (this client
    cannot offer it) or "error: ..." (no answer to tell by)."""
    kind, _, mode = how.partition("-")
    seen = {}
    for name, (version, ciphers) in OFFERS.items():
        ctx = offer_context(version, ciphers)
        if ctx is None:
            seen[name] = "untestable: this vantage's OpenSSL cannot offer it"
            continue
        try:
            sock = socket.create_connection((address, port), timeout=20)
        except OSError as e:
            seen[name] = "error: " + (e.strerror or str(e))
            continue
        try:
            if mode != "tls":
                plain_starttls(kind, Bounded(sock.makefile("rb"), Budget()), sock)
            tls = ctx.wrap_socket(sock, server_hostname=req["hostname"])
            cipher = tls.cipher()
            seen[name] = f"ACCEPTED: {tls.version()} {cipher[0] if cipher else ''}".strip()
            tls.close()
        except ssl.SSLError as e:
            seen[name] = "refused: " + (e.reason or str(e))[:100]
        except OSError as e:
            seen[name] = "error: " + (e.strerror or str(e))[:100]
        finally:
            sock.close()
    return seen


def _der_items(der: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """The DER elements between ``start`` and ``end``: (tag, where it starts, where its content starts, its end)."""
    items = []
    at = start
    while at < end:
        tag, size, head = der[at], der[at + 1], 2
        if size & 0x80:  # long form: the next (size & 0x7F) bytes give the length
            count = size & 0x7F
            if not 0 < count <= 4:
                raise ValueError("a DER length of more than 4 bytes")
            size, head = int.from_bytes(der[at + 2 : at + 2 + count], "big"), 2 + count
        if at + head + size > end:
            raise ValueError("a DER element runs past its container")
        items.append((tag, at, at + head, at + head + size))
        at += head + size
    return items


def spki_of(cert: bytes) -> bytes:
    """The SubjectPublicKeyInfo of a DER certificate (RFC 5280: the 7th field of tbsCertificate, the 6th without the
    explicit version): what a DANE ``3 1 1`` record is the SHA-256 of. ValueError when it is not one."""
    _, _, content, end = _der_items(cert, 0, len(cert))[0]
    _, _, tbs_content, tbs_end = _der_items(cert, content, end)[0]
    fields = _der_items(cert, tbs_content, tbs_end)
    fields = fields[1:] if fields and fields[0][0] == 0xA0 else fields  # [0] EXPLICIT version
    if len(fields) < 6 or fields[5][0] != 0x30:
        raise ValueError("no SubjectPublicKeyInfo where RFC 5280 puts it")
    return cert[fields[5][1] : fields[5][3]]


def tls_info(sock: Any) -> dict[str, Any]:
    cert = sock.getpeercert()
    days = (ssl.cert_time_to_seconds(cert["notAfter"]) - time.time()) / 86400
    return {"version": sock.version(), "days_left": round(days, 1)}


def handshake(sock: socket.socket, *, keys: bool = False) -> dict[str, Any]:
    """TLS on a connected socket (at once, or after STARTTLS was said yes to), the certificate verified for the
    server's name: what :func:`tls_info` sees, and the key digests when asked; the connection closed after."""
    tls = context().wrap_socket(sock, server_hostname=req["hostname"])
    seen = {"tls": tls_info(tls), **({"keys": key_digests(tls)} if keys else {})}
    tls.close()
    return seen


def tls_error(e: ssl.SSLError) -> str:
    """Why a handshake failed: the certificate's verdict, or OpenSSL's reason."""
    return getattr(e, "verify_message", None) or e.reason or str(e)


@contextlib.contextmanager
def recording(seen: dict[str, Any]) -> Iterator[None]:
    """A probe's conversation, its failure recorded in ``seen``: ``tls_error`` for the handshake or the certificate,
    ``error`` for the connection or the protocol."""
    try:
        yield
    except ssl.SSLError as e:
        seen["tls_error"] = tls_error(e)
    except (OSError, imaplib.IMAP4.error, smtplib.SMTPException) as e:
        seen["error"] = type(e).__name__ + ": " + str(e)


def key_digests(sock: Any) -> dict[str, str]:
    """The SHA-256 of the served certificate and of its public key (what DANE's TLSA records name); {} if unread."""
    der = sock.getpeercert(binary_form=True)
    try:
        return {"cert_sha256": hashlib.sha256(der).hexdigest(), "spki_sha256": hashlib.sha256(spki_of(der)).hexdigest()}
    except (ValueError, IndexError, TypeError):
        return {}


def smtp(address: str, port: int, how: str, verify: bool = True) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    ctx = context() if verify else ssl._create_unverified_context()
    try:
        s: smtplib.SMTP
        if how == "smtp-tls":
            s = SMTPS(address, port, timeout=20, context=ctx, local_hostname=req["helo"])
        else:
            s = SMTP(address, port, timeout=20, local_hostname=req["helo"])
            s._host = req["hostname"]  # type: ignore[attr-defined]  # STARTTLS verifies the name, not the address
        seen["greeting"] = s.greeting.decode(errors="replace")[:300]
        s.ehlo()
        if how != "smtp-tls":
            seen["auth_before_tls"] = s.has_extn("auth")
            seen["starttls_offered"] = s.has_extn("starttls")
            if not s.has_extn("starttls"):
                s.quit()
                return seen
            s.starttls(context=ctx)
            s.ehlo()
        seen["tls"] = tls_info(s.sock) if verify else {}
        seen["keys"] = key_digests(s.sock)  # also when the certificate is not trusted: DANE does not ask a CA
        seen["auth_after_tls"] = s.esmtp_features.get("auth", "").split()
        s.quit()
    except ssl.SSLError as e:
        seen["tls_error"] = tls_error(e)
        if verify:  # the certificate is wrong: still see what the server offers once encrypted
            again = smtp(address, port, how, verify=False)
            seen.update({k: v for k, v in again.items() if k.startswith("auth") or k == "keys"})
    except (OSError, smtplib.SMTPException) as e:
        seen["error"] = type(e).__name__ + ": " + str(e)
    return seen


def imap(address: str, port: int, how: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    with recording(seen):
        if how == "imap-tls":
            seen.update(handshake(socket.create_connection((address, port), timeout=20)))
            return seen
        m = IMAP(address, port, timeout=20)
        seen["capabilities_before_tls"] = list(m.capabilities)
        m.host = req["hostname"]
        m.starttls(ssl_context=context())
        seen["tls"] = tls_info(m.sock)
        seen["capabilities"] = list(m.capabilities)
        m.logout()
    return seen


def sieve(address: str, port: int, how: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    with recording(seen):
        sock = socket.create_connection((address, port), timeout=20)
        f = Bounded(sock.makefile("rb"), Budget())
        lines = []
        while True:
            line = f.readline().decode(errors="replace").strip()
            lines.append(line)
            if not line or line.startswith(("OK", "NO", "BYE")):
                break
        seen["sasl_before_tls"] = [x for x in lines if x.upper().startswith('"SASL"') and x.split()[1:] != ['""']]
        if not any(x.upper().startswith('"STARTTLS"') for x in lines):
            seen["error"] = "no STARTTLS offered"
            return seen
        sock.sendall(b"STARTTLS\r\n")
        answer = f.readline().decode(errors="replace").strip()
        if not answer.startswith("OK"):
            seen["error"] = "STARTTLS refused: " + answer
            return seen
        seen.update(handshake(sock))
    return seen


def envelope(address: str) -> None:
    """One connection to port 25: each relay trick and each role address up to RCPT TO, then RSET. No DATA, ever."""
    try:
        s = SMTP(address, 25, timeout=30, local_hostname=req["helo"])
        s.ehlo()
        for label, sender, rcpt in req["relay"]:
            mail = s.docmd("MAIL", f"FROM:<{sender}>")
            if mail[0] != 250:
                out["relay"].append([label, rcpt, mail[0], "MAIL FROM: " + mail[1].decode(errors="replace")])
                s.rset()
                continue
            code, text = s.docmd("RCPT", f"TO:<{rcpt}>")
            out["relay"].append([label, rcpt, code, text.decode(errors="replace")])
            s.rset()
        for rcpt in req["roles"]:
            s.docmd("MAIL", "FROM:<>")
            code, text = s.docmd("RCPT", f"TO:<{rcpt}>")
            out["roles"].append([rcpt, code, text.decode(errors="replace")])
            s.rset()
        s.quit()
    except (OSError, smtplib.SMTPException) as e:
        out["envelope_error"] = type(e).__name__ + ": " + str(e)


def https(address: str, port: int, how: str) -> dict[str, Any]:
    """TLS on connect, as a sender fetching an MTA-STS policy starts: the certificate verified for the server's name
    (a web server's default one: the policies' own names have theirs)."""
    seen: dict[str, Any] = {}
    with recording(seen), socket.create_connection((address, port), timeout=20) as sock:
        seen.update(handshake(sock, keys=True))
    return seen


CHECKS = {"smtp": smtp, "imap": imap, "sieve": sieve, "https": https}


def main() -> None:
    req.update(json.load(sys.stdin))
    resource.setrlimit(resource.RLIMIT_AS, (req["memory"], req["memory"]))
    signal.signal(signal.SIGALRM, give_up)
    signal.alarm(req["deadline"])
    every = [address for addresses in req["addresses"].values() for address in addresses]
    closed = states_at_once({address: [int(p) for p in req.get("closed", [])] for address in every})
    for address in every:
        out["ports"][address] = {str(p): state(address, p) for p in req["ports"]}
    first = next((a for f in ("4", "6") for a in req["addresses"].get(f, [])), None)
    if first:
        for port, how in req["tls"]:
            if out["ports"][first].get(str(port)) == "open":
                out["tls"][str(port)] = CHECKS[how.split("-")[0]](first, port, how)
                out["tls"][str(port)]["refused"] = refused_offers(first, port, how)
        if out["ports"][first].get("25") == "open":
            envelope(first)
    out["closed"].update(closed())
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
