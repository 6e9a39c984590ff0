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


def serve(
    handle: Callable[[socket.socket], None],
    wrap: ssl.SSLContext | None = None,
    *,
    at_once: bool = False,
    timeout: float = 1,
) -> Iterator[int]:
    """A server on a free loopback port (yielded) that gives each connection to ``handle`` (after a TLS handshake with
    ``wrap``, when given) with a ``timeout`` (seconds), and closes it; one at a time, or each in a thread of its own
    (``at_once``: for clients that hold several connections); stopped when the generator ends."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def one(sock: socket.socket) -> None:
        try:
            if wrap is not None:
                sock.settimeout(2)
                sock = wrap.wrap_socket(sock, server_side=True)
            sock.settimeout(timeout)
            handle(sock)
        except OSError:
            pass
        finally:
            sock.close()

    def run() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            if at_once:
                threading.Thread(target=one, args=(sock,), daemon=True).start()
            else:
                one(sock)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    listener.close()
