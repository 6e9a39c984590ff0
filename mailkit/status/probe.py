"""What a mail server looks like from the internet: ports, TLS, AUTH and relaying, seen from one vantage point.

The probe below uses only Python's standard library, so it runs on this machine or on any host with ``python3``
(``mailkit check --from``). It sends no password at all and no message: relay attempts stop at ``RCPT TO`` and are
reset, so checking a server never changes it.

>>> PORTS[587]
('submission (STARTTLS)', 'smtp-starttls', 2)
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from mailkit.errors import MailkitError
from mailkit.ssh import Connection

#: Ports a server built with the guide listens on, what each is, and how it starts TLS.
PORTS: dict[int, tuple[str, str, int]] = {
    25: ("SMTP (mail from other servers)", "smtp-starttls", 1),
    465: ("submissions (TLS on connect)", "smtp-tls", 2),
    587: ("submission (STARTTLS)", "smtp-starttls", 2),
    143: ("IMAP (STARTTLS)", "imap-starttls", 2),
    993: ("IMAPS (TLS on connect)", "imap-tls", 2),
    4190: ("ManageSieve (STARTTLS)", "sieve-starttls", 4),
}

#: The probe's bounds: a server it checks is hostile until shown otherwise. Whole run (seconds), memory
#: (address space, bytes), what one connection may send (bytes) and how many lines one reply may have.
DEADLINE, MEMORY, CONNECTION_BYTES, REPLY_LINES = 120, 512 * 1024 * 1024, 256 * 1024, 200

PROBE = r"""
import imaplib, json, os, resource, signal, smtplib, socket, ssl, sys, time

req = json.load(sys.stdin)
timeout = req.get("timeout", 8)
hostname = req["hostname"]
out = {"ports": {}, "tls": {}, "relay": [], "roles": []}
resource.setrlimit(resource.RLIMIT_AS, (req["memory"], req["memory"]))

def give_up(signum, frame):  # the whole probe's deadline: say so, with what was seen until then
    out["error"] = "the probe gave up after %d s" % req["deadline"]
    sys.stdout.write(json.dumps(out)); sys.stdout.flush(); os._exit(0)

signal.signal(signal.SIGALRM, give_up)
signal.alarm(req["deadline"])

class TooMuch(OSError):
    pass

class Budget:
    pass

class Bounded:
    # A server's replies, read through a budget: one connection may send so many bytes, one reply so many lines.
    def __init__(self, raw, owner):
        self.raw, self.owner = raw, owner
    def _count(self, data):
        self.owner.budget = getattr(self.owner, "budget", req["connection_bytes"]) - len(data)
        if self.owner.budget < 0:
            raise TooMuch("the server sent more than %d bytes" % req["connection_bytes"])
        return data
    def readline(self, size=-1):
        line = self._count(self.raw.readline(min(size, 8192) if size and size > 0 else 8192))
        self.owner.lines = getattr(self.owner, "lines", 0) + 1
        if self.owner.lines > req["reply_lines"]:
            raise TooMuch("the server sent more than %d lines" % req["reply_lines"])
        return line
    def read(self, size=-1):
        return self._count(self.raw.read(min(size, req["connection_bytes"]) if size and size > 0 else 8192))
    def close(self):
        self.raw.close()

class BoundedSMTP:
    def getreply(self):
        if self.file is None and self.sock is not None:
            self.file = Bounded(self.sock.makefile("rb"), self)
        self.lines = 0
        return super().getreply()

class SMTP(BoundedSMTP, smtplib.SMTP):
    pass

class IMAP(imaplib.IMAP4):
    def readline(self):
        return Bounded(self.file, self).readline(imaplib._MAXLINE)
    def read(self, size):
        return Bounded(self.file, self).read(size)

def context():
    ctx = ssl.create_default_context(cafile=req.get("cafile"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx

def state(address, port):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((address, port))
        return "open"
    except ConnectionRefusedError:
        return "closed"
    except (socket.timeout, TimeoutError):
        return "filtered"
    except OSError as e:
        return "unreachable: " + (e.strerror or str(e))
    finally:
        s.close()

def tls_info(sock):
    cert = sock.getpeercert()
    days = (ssl.cert_time_to_seconds(cert["notAfter"]) - time.time()) / 86400
    return {"version": sock.version(), "days_left": round(days, 1)}

class SMTPS(BoundedSMTP, smtplib.SMTP_SSL):
    def _get_socket(self, host, port, timeout):  # connect to the address, verify the certificate for the name
        sock = socket.create_connection((host, port), timeout)
        return self.context.wrap_socket(sock, server_hostname=hostname)

def smtp(address, port, how, verify=True):
    seen = {}
    ctx = context() if verify else ssl._create_unverified_context()
    try:
        if how == "smtp-tls":
            s = SMTPS(address, port, timeout=20, context=ctx, local_hostname=req["helo"])
        else:
            s = SMTP(address, port, timeout=20, local_hostname=req["helo"])
            s._host = hostname  # STARTTLS verifies the certificate against the server's name, not the address
        s.ehlo()
        if how != "smtp-tls":
            seen["auth_before_tls"] = s.has_extn("auth")
            seen["starttls_offered"] = s.has_extn("starttls")
            if not s.has_extn("starttls"):
                s.quit(); return seen
            s.starttls(context=ctx)
            s.ehlo()
        seen["tls"] = tls_info(s.sock) if verify else {}
        seen["auth_after_tls"] = s.esmtp_features.get("auth", "").split()
        s.quit()
    except ssl.SSLError as e:
        seen["tls_error"] = e.verify_message or e.reason or str(e)
        if verify:  # the certificate is wrong: still see what the server offers once encrypted
            again = smtp(address, port, how, verify=False)
            seen.update({k: v for k, v in again.items() if k.startswith("auth")})
    except (OSError, smtplib.SMTPException) as e:
        seen["error"] = type(e).__name__ + ": " + str(e)
    return seen

def imap(address, port, how):
    seen = {}
    try:
        if how == "imap-tls":
            sock = socket.create_connection((address, port), timeout=20)
            tls = context().wrap_socket(sock, server_hostname=hostname)
            seen["tls"] = tls_info(tls); tls.close(); return seen
        m = IMAP(address, port, timeout=20)
        seen["capabilities_before_tls"] = list(m.capabilities)
        m.host = hostname
        m.starttls(ssl_context=context())
        seen["tls"] = tls_info(m.sock)
        seen["capabilities"] = list(m.capabilities)
        m.logout()
    except ssl.SSLError as e:
        seen["tls_error"] = e.verify_message or e.reason or str(e)
    except (OSError, imaplib.IMAP4.error) as e:
        seen["error"] = type(e).__name__ + ": " + str(e)
    return seen

def sieve(address, port, how):
    seen = {}
    try:
        sock = socket.create_connection((address, port), timeout=20)
        f = Bounded(sock.makefile("rb"), Budget())
        lines = []
        while True:
            line = f.readline().decode(errors="replace").strip()
            lines.append(line)
            if not line or line.startswith(("OK", "NO", "BYE")):
                break
        seen["sasl_before_tls"] = [l for l in lines if l.upper().startswith('"SASL"') and l.split()[1:] != ['""']]
        if not any(l.upper().startswith('"STARTTLS"') for l in lines):
            seen["error"] = "no STARTTLS offered"; return seen
        sock.sendall(b"STARTTLS\r\n")
        answer = f.readline().decode(errors="replace").strip()
        if not answer.startswith("OK"):
            seen["error"] = "STARTTLS refused: " + answer; return seen
        tls = context().wrap_socket(sock, server_hostname=hostname)
        seen["tls"] = tls_info(tls)
        tls.close()
    except ssl.SSLError as e:
        seen["tls_error"] = e.verify_message or e.reason or str(e)
    except OSError as e:
        seen["error"] = type(e).__name__ + ": " + str(e)
    return seen

def envelope(address):
    # One connection to port 25: each relay trick and each role address up to RCPT TO, then RSET. No DATA, ever.
    try:
        s = SMTP(address, 25, timeout=30, local_hostname=req["helo"])
        s.ehlo()
        for label, sender, rcpt in req["relay"]:
            mail = s.docmd("MAIL", "FROM:<%s>" % sender)
            if mail[0] != 250:
                out["relay"].append([label, rcpt, mail[0], "MAIL FROM: " + mail[1].decode(errors="replace")])
                s.rset(); continue
            code, text = s.docmd("RCPT", "TO:<%s>" % rcpt)
            out["relay"].append([label, rcpt, code, text.decode(errors="replace")])
            s.rset()
        for rcpt in req["roles"]:
            s.docmd("MAIL", "FROM:<>")
            code, text = s.docmd("RCPT", "TO:<%s>" % rcpt)
            out["roles"].append([rcpt, code, text.decode(errors="replace")])
            s.rset()
        s.quit()
    except (OSError, smtplib.SMTPException) as e:
        out["envelope_error"] = type(e).__name__ + ": " + str(e)

for family, addresses in req["addresses"].items():
    for address in addresses:
        out["ports"][address] = {str(p): state(address, p) for p in req["ports"]}
first = next((a for f in ("4", "6") for a in req["addresses"].get(f, [])), None)
if first:
    for port, how in req["tls"]:
        if out["ports"][first].get(str(port)) == "open":
            kind = how.split("-")[0]
            out["tls"][str(port)] = {"smtp": smtp, "imap": imap, "sieve": sieve}[kind](first, port, how)
    if out["ports"][first].get("25") == "open":
        envelope(first)
json.dump(out, sys.stdout)
"""


def run_probe(request: dict[str, Any], vantage: Connection | None, *, deadline: int = DEADLINE) -> dict[str, Any]:
    """Run the probe on ``vantage`` (over SSH, as the login user: it needs no privileges) or, when None, on this
    machine; return what it saw. Past ``deadline`` seconds it reports what it saw until then and ends."""
    bounds = {"deadline": deadline, "memory": MEMORY, "connection_bytes": CONNECTION_BYTES, "reply_lines": REPLY_LINES}
    payload = json.dumps({**request, **bounds})
    # Should it hang all the same, it is killed where it runs (``timeout``), and this side stops waiting.
    python = sys.executable if vantage is None else "python3"
    argv = ["timeout", "-k", "5", str(deadline + 10), python, "-c", PROBE]
    if vantage is None:
        try:
            done = subprocess.run(argv, input=payload, capture_output=True, text=True, timeout=deadline + 30)
        except subprocess.TimeoutExpired:
            raise MailkitError(f"the outside probe did not end within {deadline + 30} s") from None
        stdout, stderr = done.stdout, done.stderr
    else:
        result = vantage.run(argv, input=payload, check=False, timeout=deadline + 30, sudo=False)
        stdout, stderr = result.stdout, result.stderr
    try:
        return json.loads(stdout)
    except ValueError:
        raise MailkitError(f"the outside probe failed: {stderr.strip()[-500:]}") from None
