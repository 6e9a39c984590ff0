"""SMTP and IMAP conversations run *on the outside host* with Python's smtplib and imaplib.

The client program below uses only the standard library; it is sent to ``python3`` on the other host,
and its request (including any password) travels on standard input, never on a command line. TLS is
verified against the other host's trust store (the lab CA is in it) and the server's host name.

A real credential never crosses an unencrypted connection: a request in ``plain`` mode that carries a
password is refused unless it says the credential is a throwaway one (:func:`throwaway_login`).

>>> sorted(run_client.__annotations__)
['outside', 'request', 'return']
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from mailkit.errors import MailkitError, UsageError
from mailkit.ssh import Connection

CLIENT = r"""
import imaplib, json, smtplib, socket, ssl, sys

req = json.load(sys.stdin)
out = {}
ctx = ssl.create_default_context()
ctx.minimum_version = ssl.TLSVersion.TLSv1_2
host, port, timeout = req["host"], req["port"], req.get("timeout", 20)

def reply(r):
    code, text = r
    return [code, text.decode(errors="replace") if isinstance(text, bytes) else str(text)]

def tls_info(sock):
    cert = sock.getpeercert()
    # The name it is for: its DNS names (subjectAltName), as clients match them; ACME CAs may leave the CN out.
    names = [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]
    subject = dict(x[0] for x in cert.get("subject", ()))
    name = host if host in names else (names or [subject.get("commonName")])[0]
    return {"version": sock.version(), "subject": name, "not_after": cert.get("notAfter")}

def smtp():
    mode = req["mode"]
    try:
        if mode == "tls":
            s = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ctx)
        else:
            s = smtplib.SMTP(host, port, timeout=timeout)
    except (ssl.SSLError, ssl.CertificateError) as e:
        out["tls_error"] = str(e); return
    out["banner_ok"] = True
    s.ehlo("outside.example.net")
    out["auth_before_tls"] = s.has_extn("auth")
    out["starttls_offered"] = s.has_extn("starttls")
    if mode == "starttls":
        try:
            s.starttls(context=ctx)
        except (ssl.SSLError, ssl.CertificateError) as e:
            out["tls_error"] = str(e); return
        s.ehlo("outside.example.net")
    if mode in ("starttls", "tls"):
        out["tls"] = tls_info(s.sock)
    out["auth_offered"] = s.esmtp_features.get("auth", "").split()
    if req.get("user") and (mode != "plain" or req.get("throwaway")):
        mech = req.get("mechanism", "PLAIN")
        s.user, s.password = req["user"], req["password"]
        auth = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login}[mech]
        try:
            out["auth"] = reply(s.auth(mech, auth, initial_response_ok=True))
        except smtplib.SMTPAuthenticationError as e:
            out["auth"] = [e.smtp_code, e.smtp_error.decode(errors="replace")]
        except smtplib.SMTPNotSupportedError as e:
            out["auth"] = [0, "AUTH not supported: " + str(e)]
    if req.get("mail_from"):
        out["mail"] = reply(s.mail(req["mail_from"]))
        if out["mail"][0] == 250:
            out["rcpt"] = reply(s.rcpt(req["rcpt"]))
            if out["rcpt"][0] in (250, 251) and req.get("data"):
                out["data"] = reply(s.data(req["data"].encode()))
    try:
        s.quit()
    except smtplib.SMTPServerDisconnected:
        pass

def imap():
    mode = req["mode"]
    try:
        if mode == "tls":
            m = imaplib.IMAP4_SSL(host, port, ssl_context=ctx, timeout=timeout)
        else:
            m = imaplib.IMAP4(host, port, timeout=timeout)
            out["capabilities_before_tls"] = list(m.capabilities)
            if mode == "starttls":
                m.starttls(ssl_context=ctx)
    except (ssl.SSLError, ssl.CertificateError) as e:
        out["tls_error"] = str(e); return
    if mode in ("starttls", "tls"):
        out["tls"] = tls_info(m.sock)
    out["capabilities"] = list(m.capabilities)
    if mode == "plain" and not req.get("throwaway"):
        out["login"] = ["SKIPPED", "no real password is sent without TLS"]; return
    try:
        typ, data = m.login(req["user"], req["password"])
        out["login"] = [typ, data[0].decode(errors="replace")]
    except imaplib.IMAP4.error as e:
        out["login"] = ["NO", str(e)]
        return
    typ, data = m.select("INBOX", readonly=True)
    out["messages"] = int(data[0])
    if req.get("subject"):
        typ, data = m.search(None, "SUBJECT", '"' + req["subject"] + '"')
        ids = data[0].split()
        out["found"] = len(ids)
        if ids:
            typ, data = m.fetch(ids[-1], "(BODY.PEEK[HEADER.FIELDS (SUBJECT FROM TO)])")
            out["headers"] = data[0][1].decode(errors="replace").strip()
    m.logout()

try:
    {"smtp": smtp, "imap": imap}[req["protocol"]]()
except (OSError, smtplib.SMTPException, imaplib.IMAP4.error) as e:
    out["error"] = type(e).__name__ + ": " + str(e)
json.dump(out, sys.stdout)
"""


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
    if request.get("mode") == "plain" and request.get("password") and not request.get("throwaway"):
        raise UsageError("a real password is never sent without TLS: use throwaway_login() to probe cleartext")
    return run_program(outside, CLIENT, request)


def run_program(outside: Connection, program: str, request: dict[str, Any], timeout: int = 180) -> dict[str, Any]:
    """Run a standard-library Python ``program`` on ``outside``: the request (passwords too) on its standard
    input as JSON, never on a command line; its JSON answer back."""
    result = outside.run(["python3", "-c", program], input=json.dumps(request), check=False, timeout=timeout)
    try:
        return json.loads(result.stdout)
    except ValueError:
        raise MailkitError(f"the client on {outside!r} failed: {result.stderr.strip()[-500:]}") from None
