"""Servers and ports on loopback for the tests of mailkit's own clients (fakes for unit tests only).

>>> 0 < free_port() < 65536
True
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator


def free_port() -> int:
    """A TCP port nothing listens on at the moment (the kernel's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(handle: Callable[[socket.socket], None], wrap: ssl.SSLContext | None = None) -> Iterator[int]:
    """A server on a free loopback port (yielded) that gives each connection, one at a time, to ``handle`` (after a
    TLS handshake with ``wrap``, when given) with a 1 s timeout, and closes it; stopped when the generator ends."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                if wrap is not None:
                    sock.settimeout(2)
                    sock = wrap.wrap_socket(sock, server_side=True)
                sock.settimeout(1)
                handle(sock)
            except OSError:
                pass
            finally:
                sock.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    listener.close()
