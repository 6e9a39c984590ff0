"""Part 4's client on the outside host: a spam bot's pregreeting, a delivery from a chosen address, an IMAP
session that finds (and moves) test messages, and a ManageSieve session that checks scripts.

It runs there with ``python3`` and its standard library only (:func:`mailkit.remote.source`). The request, the
password included, arrives as JSON on standard input, never on a command line; the answer leaves as JSON on
standard output. TLS is verified against that host's trust store and the server's name.
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import json
import re
import smtplib
import socket
import ssl
import sys
import time
from typing import Any, BinaryIO

#: The request (read in :func:`main`) and what was seen.
req: dict[str, Any] = {}
out: dict[str, Any] = {}
#: The most a pregreeting test reads of the server's answer.
PREGREET_BYTES = 65536


def context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def reply(answer: tuple[int, Any]) -> list[Any]:
    code, text = answer
    return [code, text.decode(errors="replace") if isinstance(text, bytes) else str(text)]


def pregreet() -> None:
    """What spam bots do: talk before the server has finished its greeting."""
    s = socket.create_connection((req["host"], 25), timeout=30, source_address=(req["source"], 0))
    s.sendall(b"EHLO bot.example.net\r\n")
    data = b""
    try:
        while len(data) < PREGREET_BYTES:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        out["timed_out"] = True
    out["replies"] = data.decode(errors="replace").splitlines()


def send() -> None:
    source = (req["source"], 0) if req.get("source") else None
    s = smtplib.SMTP(req["host"], 25, timeout=90, source_address=source)
    helo = req.get("helo", "outside.example.net")
    s.ehlo(helo)
    if s.has_extn("starttls"):
        s.starttls(context=context())
        s.ehlo(helo)
    stages = [
        ("mail", lambda: s.mail(req["mail_from"])),
        ("rcpt", lambda: s.rcpt(req["rcpt"])),
        ("data", lambda: s.data(req["data"].encode())),
    ]
    for name, step in stages:
        out[name] = reply(step())
        if out[name][0] not in (250, 251):
            break
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        s.quit()


def wait_for(m: imaplib.IMAP4, folder: str, token: str, seconds: float) -> list[bytes]:
    deadline = time.time() + seconds
    while True:
        m.select(folder)
        _, data = m.uid("SEARCH", "SUBJECT", '"' + token + '"')
        uids: list[bytes] = (data[0] or b"").split()
        if uids or time.time() > deadline:
            return uids
        time.sleep(0.5)


def imap() -> None:
    imaplib.Commands.setdefault("MOVE", ("SELECTED",))
    m = imaplib.IMAP4_SSL(req["host"], 993, ssl_context=context(), timeout=30)
    m.login(req["user"], req["password"])
    for step in req["steps"]:
        key = step["name"]
        uids = wait_for(m, step["folder"], step["token"], step.get("wait", 0))
        out[key] = {"found": len(uids)}
        if uids and step.get("headers"):
            _, data = m.uid("FETCH", uids[-1].decode(), "(BODY.PEEK[HEADER])")
            first = data[0]
            assert isinstance(first, tuple)
            out[key]["headers"] = first[1].decode(errors="replace")
        if uids and step.get("move_to"):
            typ, _ = m.uid("MOVE", uids[-1].decode(), step["move_to"])
            out[key]["moved"] = typ
    m.logout()


def response(f: BinaryIO) -> list[str]:
    """One ManageSieve response: its lines up to OK, NO or BYE (a reason sent as a literal is read in)."""
    lines: list[str] = []
    while True:
        line = f.readline().decode(errors="replace").rstrip("\r\n")
        if not line:
            return [*lines, "BYE (connection closed)"]
        literal = re.match(r"(OK|NO|BYE) .*\{(\d+)\}$", line)
        if literal:  # the reason follows as a literal, then the line's end: both are this response's
            line = line[: line.rindex("{")] + f.read(int(literal.group(2))).decode(errors="replace")
            line += f.readline().decode(errors="replace").rstrip("\r\n")
        lines.append(" ".join(line.split()))
        if line.startswith(("OK", "NO", "BYE")):
            return lines


def managesieve() -> None:
    host = req["host"]
    s = socket.create_connection((host, req["port"]), timeout=30)
    plain = s.makefile("rb")
    out["before_tls"] = response(plain)
    s.sendall(b"STARTTLS\r\n")
    out["starttls"] = response(plain)[-1]
    tls = context().wrap_socket(s, server_hostname=host)
    f = tls.makefile("rb")
    out["after_tls"] = response(f)
    token = base64.b64encode(("\0" + req["user"] + "\0" + req["password"]).encode()).decode()
    tls.sendall(('AUTHENTICATE "PLAIN" "' + token + '"\r\n').encode())
    out["auth"] = response(f)[-1]
    for name, script in req["scripts"].items():
        data = script.encode()
        tls.sendall(b"CHECKSCRIPT {" + str(len(data)).encode() + b"+}\r\n" + data + b"\r\n")
        out[name] = response(f)
    tls.sendall(b"LOGOUT\r\n")
    response(f)


def main() -> None:
    req.update(json.load(sys.stdin))
    actions = {"pregreet": pregreet, "send": send, "imap": imap, "managesieve": managesieve}
    try:
        actions[req["action"]]()
    except (OSError, smtplib.SMTPException, imaplib.IMAP4.error) as e:
        out["error"] = type(e).__name__ + ": " + str(e)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
