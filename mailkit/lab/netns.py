"""Network namespaces for labs side by side: enter one, and relay the apt proxy into it.

``mailkit matrix`` runs each release's lab inside a namespace of its own (``mkmatrix1``, ...), where the lab's
usual addresses (198.51.100.0/24) exist once per namespace and never meet. Only the Debian archive is reached from
there, through :class:`ProxyRelay`: it listens inside the namespace where a lab host expects its apt proxy, and
forwards to the one shared proxy on this machine's loopback.

>>> runner_namespace(2)
'mkmatrix2'
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import threading
from pathlib import Path

from mailkit.core.errors import LabError
from mailkit.core.local import run_local

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")
#: Runner namespaces are not named "mailkit-...": no lab's ``down`` may take another lab's namespace with it.
RUNNER_PREFIX = "mkmatrix"


def runner_namespace(instance: int) -> str:
    return f"{RUNNER_PREFIX}{instance}"


def _setns_fd(fd: int, what: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise LabError(f"cannot enter the network namespace {what}: {os.strerror(ctypes.get_errno())}")


def _setns(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        _setns_fd(fd, str(path))
    finally:
        os.close(fd)


def enter(name: str) -> None:
    """Move this thread (call it first thing in a process: its children follow) into namespace ``name``."""
    _setns(NETNS_DIR / name)


def create(name: str) -> None:
    """A new namespace with only ``lo`` up (the lab's switch link is added by the lab itself)."""
    delete(name)
    run_local(["ip", "netns", "add", name])
    run_local(["ip", "-n", name, "link", "set", "lo", "up"])


def delete(name: str) -> None:
    if (NETNS_DIR / name).exists():
        run_local(["ip", "netns", "delete", name], check=False)


def runner_namespaces() -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(RUNNER_PREFIX))


class ProxyRelay:
    """TCP relay: accepts inside namespace ``name`` on ``port``, connects to ``target`` on this machine.

    The listening socket is made inside the namespace by a thread that enters it and comes back; sockets keep
    the namespace they were made in, so accepted connections are in the lab's namespace and the forwarded
    ones in the machine's.
    """

    def __init__(self, name: str, port: int, target: tuple[str, int]) -> None:
        self.name, self.port, self.target = name, port, target
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()

    def start(self) -> None:
        ready: list[BaseException | socket.socket] = []

        def listen() -> None:
            home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
            try:
                enter(self.name)
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("0.0.0.0", self.port))  # the namespace holds only the lab's link and lo
                sock.listen(64)
                ready.append(sock)
            except BaseException as exc:  # reported to the caller below
                ready.append(exc)
            finally:
                _setns_fd(home, "of this machine")
                os.close(home)

        thread = threading.Thread(target=listen)
        thread.start()
        thread.join()
        if isinstance(ready[0], BaseException):
            raise LabError(f"cannot relay the apt proxy into {self.name}: {ready[0]}")
        self._listener = ready[0]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._pair, args=(client,), daemon=True).start()

    def _pair(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=30)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
        client.close()
        upstream.close()

    def stop(self) -> None:
        self._stopped.set()
        if self._listener is not None:
            self._listener.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy one direction until its end, then pass the end on (the other direction may still be talking)."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
