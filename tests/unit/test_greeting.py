"""The greeting probe (is outgoing port 25 blocked?) run for real with bash, against servers on loopback."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from mailkit.clients.smtp import greeting
from mailkit.core.result import Result


class Here:
    """Runs the probe's command on this machine, as a connection runs it on the server."""

    def run(self, argv: Sequence[str], check: bool = True, **_: object) -> Result:
        done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
        return Result(" ".join(argv), done.stdout, done.stderr, done.returncode)


@contextmanager
def serving(data: bytes) -> Iterator[int]:
    """A server on loopback that sends ``data`` and then keeps the connection open, as a mail server waits."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        conn, _ = listener.accept()
        conn.sendall(data)
        time.sleep(3)
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def test_a_greeting_is_read_as_soon_as_its_line_ends() -> None:
    with serving(b"220 mx.example.net ESMTP Postfix\r\n") as port:
        started = time.monotonic()
        assert greeting(Here(), "127.0.0.1", port) == "220 mx.example.net ESMTP Postfix"  # type: ignore[arg-type]
        assert time.monotonic() - started < 2, "the line is enough: the server keeps the connection open"


def test_a_line_without_end_is_cut_and_a_closed_port_says_nothing() -> None:
    with serving(b"A" * 100_000) as port:
        seen = greeting(Here(), "127.0.0.1", port)  # type: ignore[arg-type]
        assert seen == "A" * 512
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    assert greeting(Here(), "127.0.0.1", port, seconds=2) == ""  # type: ignore[arg-type]
