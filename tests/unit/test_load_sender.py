"""The reliability suite's sender for the outside host, read as a module (issue 21: no program in a string), run
as it is sent (``python3 -c``, the request on stdin) against a loopback SMTP server that is busy at first."""

from __future__ import annotations

import json
import socketserver
import subprocess
import sys
import threading
from typing import ClassVar

from mailkit.clients.loadtest import SENDER
from mailkit.remote import source
from mailkit.remote.load_sender import message_id


class BusyAtFirst(socketserver.StreamRequestHandler):
    """Just enough SMTP: the first RCPT of all is refused with 451 (try later); every message is kept."""

    refused: ClassVar[threading.Event] = threading.Event()
    kept: ClassVar[list[bytes]] = []

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 mail.example.org ESMTP")
        while line := self.rfile.readline(1000):
            verb = line[:4].upper()
            if verb == b"RCPT" and not self.refused.is_set():
                self.refused.set()
                self.reply("451 4.3.0 busy, try again later")
            elif verb == b"DATA":
                self.reply("354 go on")
                body = b"".join(iter(lambda: self.rfile.readline(10000), b".\r\n"))
                self.kept.append(body)
                self.reply("250 2.0.0 queued")
            elif verb == b"QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


def test_the_program_sent_is_this_module() -> None:
    assert source("load_sender") == SENDER and "def worker() -> None:" in SENDER


def test_every_message_is_accepted_once_and_a_refusal_is_a_retry() -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), BusyAtFirst)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        program = SENDER.replace('(req["host"], 25,', f'(req["host"], {port},', 1)
        assert program != SENDER, "the port is patched in for the test"
        request = {"host": "127.0.0.1", "recipients": ["alice@example.org", "bob@example.org"], "count": 12,
                   "run": "t1", "connections": 3, "give_up_after": 20}  # fmt: skip
        done = subprocess.run([sys.executable, "-c", program], input=json.dumps(request), capture_output=True,
                              text=True, timeout=60, check=True)  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    seen = json.loads(done.stdout)
    assert sorted(seen["accepted"]) == list(range(12)) and seen["failed"] == [] and seen["ambiguous"] == []
    assert seen["retries"] == 1
    ids = sorted(b.split(b"Message-ID: ")[1].split(b"\r\n")[0].decode() for b in BusyAtFirst.kept)
    assert ids == sorted(message_id("t1", n) for n in range(12)), "each message once, with its own Message-ID"
