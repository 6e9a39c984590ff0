"""The reliability suite's sender, on the outside host: many messages over parallel SMTP connections, each retried
until the server accepts it, as a real MTA retries from its queue.

It runs there with ``python3`` and its standard library only (:func:`mailkit.remote.source`): the request arrives
as JSON on standard input, the answer (accepted, ambiguous and failed message numbers, retries, seconds) leaves as
JSON on standard output. A message whose connection broke after its content was sent is *ambiguous*: the server
may have taken it.

>>> message_id("r1", 7)
'<mk-load-r1-7@example.net>'
"""

from __future__ import annotations

import contextlib
import json
import smtplib
import sys
import threading
import time
from typing import Any

#: The request (read in :func:`main`) and what was seen.
req: dict[str, Any] = {}
out: dict[str, Any] = {"accepted": [], "ambiguous": [], "retries": 0, "failed": []}
lock = threading.Lock()
todo: list[int] = []
BODY = "\r\n".join(["The reliability suite's message, a few lines long so it looks like mail."] * 20)


def message_id(run: str, n: int) -> str:
    """Message ``n`` of the load ``run``: unique, so the mail host can be asked where each one ended."""
    return f"<mk-load-{run}-{n}@example.net>"


def message(n: int) -> tuple[str, str]:
    rcpt = req["recipients"][n % len(req["recipients"])]
    data = (
        f"From: dana@example.net\r\nTo: {rcpt}\r\nSubject: load {req['run']} {n}\r\n"
        f"Message-ID: {message_id(req['run'], n)}\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\n\r\n{BODY}\r\n"
    )
    return rcpt, data


def worker() -> None:
    conn: smtplib.SMTP | None = None
    while True:
        with lock:
            if not todo:
                break
            n = todo.pop()
        rcpt, data = message(n)
        deadline = time.time() + req["give_up_after"]
        while True:
            sent_data = False
            try:
                if conn is None:
                    conn = smtplib.SMTP(req["host"], 25, timeout=60)
                    conn.ehlo("outside.example.net")
                conn.mail("dana@example.net")
                code, _ = conn.rcpt(rcpt)
                if code != 250:
                    raise smtplib.SMTPResponseException(code, b"rcpt")
                sent_data = True
                code, _ = conn.data(data.encode())
                if code == 250:
                    with lock:
                        out["accepted"].append(n)
                    break
                raise smtplib.SMTPResponseException(code, b"data")
            except (OSError, smtplib.SMTPException) as e:
                with lock:
                    if sent_data and not isinstance(e, smtplib.SMTPResponseException):
                        out["ambiguous"].append(n)
                    out["retries"] += 1
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                conn = None
                if time.time() > deadline:
                    with lock:
                        out["failed"].append([n, str(e)[:100]])
                    break
                time.sleep(0.5)
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.quit()


def main() -> None:
    req.update(json.load(sys.stdin))
    todo.extend(range(req["count"]))
    start = time.time()
    threads = [threading.Thread(target=worker) for _ in range(req["connections"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["seconds"] = time.time() - start
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
