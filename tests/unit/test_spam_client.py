"""Part 4's client for the outside host, read as a module (issue 21: no program in a string): its ManageSieve
reader, and a pregreeting against a loopback server, run as it is sent (``python3 -c`` with the request on stdin)."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import threading

from mailkit.guide.part4_checks import CLIENT
from mailkit.remote import source, spam_client


def test_the_program_sent_is_this_module() -> None:
    assert source("spam_client") == CLIENT and "def managesieve() -> None:" in CLIENT


def test_a_managesieve_reason_sent_as_a_literal_is_read_in() -> None:
    said = io.BytesIO(b'"IMPLEMENTATION" "Dovecot"\r\nNO {24}\r\nline 3: error: unknown x\r\nOK "next"\r\n')
    assert spam_client.response(said) == ['"IMPLEMENTATION" "Dovecot"', "NO line 3: error: unknown x"]
    assert spam_client.response(said) == ['OK "next"']
    assert spam_client.response(io.BytesIO(b"")) == ["BYE (connection closed)"]


def test_a_pregreeting_client_reports_what_the_server_answered() -> None:
    """A server that greets late and drops a client that spoke first, as postscreen does (on loopback here)."""
    listener = socket.create_server(("127.0.0.1", 0))
    heard: list[bytes] = []

    def postscreen() -> None:
        conn, _ = listener.accept()
        conn.settimeout(5)
        conn.sendall(b"220-mail.example.org ESMTP\r\n")
        heard.append(conn.recv(100))
        conn.sendall(b"550 5.5.1 Protocol error\r\n")
        conn.close()

    thread = threading.Thread(target=postscreen)
    thread.start()
    port = listener.getsockname()[1]
    # The program connects to port 25: the request's host is loopback, and the port is patched in for the test.
    program = source("spam_client").replace('(req["host"], 25)', f'(req["host"], {port})', 1)
    request = {"action": "pregreet", "host": "127.0.0.1", "source": "127.0.0.1"}
    done = subprocess.run([sys.executable, "-c", program], input=json.dumps(request), capture_output=True,
                          text=True, timeout=30, check=True)  # fmt: skip
    thread.join()
    listener.close()
    assert heard == [b"EHLO bot.example.net\r\n"]
    assert json.loads(done.stdout)["replies"] == ["220-mail.example.org ESMTP", "550 5.5.1 Protocol error"]
