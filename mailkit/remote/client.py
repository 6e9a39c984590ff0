"""SMTP and IMAP conversations, run on the outside host with ``python3`` and its standard library only.

The request (including any password) arrives as JSON on standard input, never on a command line; the answer leaves
as JSON on standard output. A request ``{"batch": [...]}`` holds several conversations: they run at the same time,
each on its own connection, and the answer is the list of what each saw, in the same order. TLS is verified
against that host's trust store and the server's host name.
:func:`mailkit.clients.remote_client.run_client` refuses to send a real password in ``plain`` mode before this
runs; here too, a cleartext IMAP login is made only with a throwaway credential.
"""

from __future__ import annotations

import contextlib
import imaplib
import json
import smtplib
import ssl
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

#: The most conversations one batch runs (each a connection and a thread).
MAX_BATCH = 32


def context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def reply(answer: tuple[int, Any]) -> list[Any]:
    code, text = answer
    return [code, text.decode(errors="replace") if isinstance(text, bytes) else str(text)]


def tls_info(sock: Any, req: dict[str, Any]) -> dict[str, Any]:
    cert = sock.getpeercert()
    # The name it is for: its DNS names (subjectAltName), as clients match them; ACME CAs may leave the CN out.
    names = [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]
    subject = dict(x[0] for x in cert.get("subject", ()))
    name = req["host"] if req["host"] in names else (names or [subject.get("commonName")])[0]
    return {"version": sock.version(), "subject": name, "not_after": cert.get("notAfter")}


def smtp(req: dict[str, Any], out: dict[str, Any]) -> None:
    mode, host, port, timeout, ctx = req["mode"], req["host"], req["port"], req.get("timeout", 20), context()
    s: smtplib.SMTP
    try:
        if mode == "tls":
            s = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ctx)
        else:
            s = smtplib.SMTP(host, port, timeout=timeout)
    except (ssl.SSLError, ssl.CertificateError) as e:
        out["tls_error"] = str(e)
        return
    out["banner_ok"] = True
    s.ehlo("outside.example.net")
    out["auth_before_tls"] = s.has_extn("auth")
    out["starttls_offered"] = s.has_extn("starttls")
    if mode == "starttls":
        try:
            s.starttls(context=ctx)
        except (ssl.SSLError, ssl.CertificateError) as e:
            out["tls_error"] = str(e)
            return
        s.ehlo("outside.example.net")
    if mode in ("starttls", "tls"):
        out["tls"] = tls_info(s.sock, req)
    out["auth_offered"] = s.esmtp_features.get("auth", "").split()
    if req.get("user") and (mode != "plain" or req.get("throwaway")):
        mech = req.get("mechanism", "PLAIN")
        s.user, s.password = req["user"], req["password"]
        auth = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login}[mech]
        try:
            out["auth"] = reply(s.auth(mech, auth, initial_response_ok=True))
        except smtplib.SMTPAuthenticationError as e:
            out["auth"] = reply((e.smtp_code, e.smtp_error))
        except smtplib.SMTPNotSupportedError as e:
            out["auth"] = [0, "AUTH not supported: " + str(e)]
    if req.get("mail_from"):
        out["mail"] = reply(s.mail(req["mail_from"]))
        if out["mail"][0] == 250:
            out["rcpt"] = reply(s.rcpt(req["rcpt"]))
            if out["rcpt"][0] in (250, 251) and req.get("data"):
                out["data"] = reply(s.data(req["data"].encode()))
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        s.quit()


def imap(req: dict[str, Any], out: dict[str, Any]) -> None:
    mode, host, port, timeout, ctx = req["mode"], req["host"], req["port"], req.get("timeout", 20), context()
    m: imaplib.IMAP4
    try:
        if mode == "tls":
            m = imaplib.IMAP4_SSL(host, port, ssl_context=ctx, timeout=timeout)
        else:
            m = imaplib.IMAP4(host, port, timeout=timeout)
            out["capabilities_before_tls"] = list(m.capabilities)
            if mode == "starttls":
                m.starttls(ssl_context=ctx)
    except (ssl.SSLError, ssl.CertificateError) as e:
        out["tls_error"] = str(e)
        return
    if mode in ("starttls", "tls"):
        out["tls"] = tls_info(m.sock, req)
    out["capabilities"] = list(m.capabilities)
    if mode == "plain" and not req.get("throwaway"):
        out["login"] = ["SKIPPED", "no real password is sent without TLS"]
        return
    try:
        typ, data = m.login(req["user"], req["password"])
        out["login"] = [typ, data[0].decode(errors="replace")]
    except imaplib.IMAP4.error as e:
        out["login"] = ["NO", str(e)]
        return
    _, selected = m.select("INBOX", readonly=True)
    out["messages"] = int(selected[0] or 0)
    if req.get("subject"):
        _, found = m.search(None, "SUBJECT", '"' + req["subject"] + '"')
        ids = (found[0] or b"").split()
        out["found"] = len(ids)
        if ids:
            _, fetched = m.fetch(ids[-1].decode(), "(BODY.PEEK[HEADER.FIELDS (SUBJECT FROM TO)])")
            first: Any = fetched[0]
            out["headers"] = first[1].decode(errors="replace").strip()
    m.logout()


def converse(req: dict[str, Any]) -> dict[str, Any]:
    """One conversation: what was seen, or how it failed."""
    out: dict[str, Any] = {}
    try:
        {"smtp": smtp, "imap": imap}[req["protocol"]](req, out)
    except (OSError, smtplib.SMTPException, imaplib.IMAP4.error) as e:
        out["error"] = type(e).__name__ + ": " + str(e)
    return out


def main() -> None:
    request = json.load(sys.stdin)
    if "batch" not in request:
        json.dump(converse(request), sys.stdout)
        return
    batch = request["batch"][:MAX_BATCH]
    with ThreadPoolExecutor(max_workers=max(1, len(batch))) as pool:
        json.dump(list(pool.map(converse, batch)), sys.stdout)


if __name__ == "__main__":
    main()
