"""Host keys: unknown and mismatched keys are refused with the fingerprint; a known key connects.

A small paramiko SSH server on loopback plays the remote host (a fake for mailkit's own logic;
the lab tests do the same against real OpenSSH).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from mailkit.core.errors import HostKeyError, MailkitError
from mailkit.core.hostkeys import fingerprint
from mailkit.core.ssh import Connection

# The fake server's transport thread sees the client hang up on a refused key: expected, not a failure.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


class _AcceptClientKey(paramiko.ServerInterface):
    def __init__(self) -> None:
        self.exec_requested = threading.Event()
        self.command = b""

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        self.command = command
        self.exec_requested.set()
        return True


@pytest.fixture
def server() -> Iterator[tuple[int, paramiko.PKey]]:
    host_key = paramiko.ECDSAKey.generate()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            transport = paramiko.Transport(sock)
            transport.add_server_key(host_key)
            handler = _AcceptClientKey()
            try:
                transport.start_server(server=handler)
            except (paramiko.SSHException, EOFError):
                continue
            channel = transport.accept(timeout=5)
            if channel is None or not handler.exec_requested.wait(5):
                continue
            if handler.command == b"flood":  # a hostile host: prints without end
                while not channel.closed and not stop.is_set():
                    try:
                        channel.sendall(b"x" * 65536)
                    except (OSError, EOFError, paramiko.SSHException):
                        break
            elif handler.command == b"hang":  # a hostile host: never ends the command
                while not channel.closed and not stop.is_set():
                    time.sleep(0.05)
            else:
                channel.sendall(handler.command)  # echo the command line, so the test sees exactly what was sent
                channel.send_exit_status(0)
            channel.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port, host_key
    stop.set()
    thread.join()
    listener.close()


@pytest.fixture
def client_key(tmp_path: Path) -> Path:
    path = tmp_path / "id_ecdsa"
    paramiko.ECDSAKey.generate().write_private_key_file(str(path))
    return path


def _known_hosts(path: Path, port: int, key: paramiko.PKey) -> Path:
    path.write_text(f"[127.0.0.1]:{port} {key.get_name()} {key.get_base64()}\n")
    return path


def _connection(port: int, known: Path, key: Path) -> Connection:
    return Connection(
        "127.0.0.1", user="root", port=port, known_hosts=known, key_file=key, ssh_config=Path("/nonexistent")
    )


def test_unknown_host_key_is_refused_with_its_fingerprint(server, client_key, tmp_path) -> None:
    port, host_key = server
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyError) as caught:
        _connection(port, empty, client_key).run(["true"])
    message = str(caught.value)
    assert "unknown SSH host key" in message
    assert fingerprint(host_key) in message
    assert "ssh-keyscan" in message
    assert empty.read_text() == "", "the key must not be added silently"


def test_mismatched_host_key_is_refused(server, client_key, tmp_path) -> None:
    port, host_key = server
    other = paramiko.ECDSAKey.generate()
    known = _known_hosts(tmp_path / "known_hosts", port, other)
    with pytest.raises(HostKeyError) as caught:
        _connection(port, known, client_key).run(["true"])
    assert "does NOT match" in str(caught.value)
    assert fingerprint(host_key) in str(caught.value)
    assert fingerprint(other) in str(caught.value)


def test_known_host_key_connects_and_sends_quoted_command(server, client_key, tmp_path) -> None:
    port, host_key = server
    known = _known_hosts(tmp_path / "known_hosts", port, host_key)
    with _connection(port, known, client_key) as conn:
        result = conn.run(["echo", "a b", "$HOME"])
    assert result.ok
    assert result.stdout == "echo 'a b' '$HOME'"


def test_fingerprint_matches_openssh_format() -> None:
    key = paramiko.ECDSAKey.generate()
    fp = fingerprint(key)
    assert fp.startswith("SHA256:") and not fp.endswith("=") and len(fp) == 7 + 43


def test_a_host_that_prints_without_end_is_cut_off(server, client_key, tmp_path) -> None:
    """Security review, finding 6: a student who replaces a command on their host cannot exhaust the board."""
    port, host_key = server
    known = _known_hosts(tmp_path / "known_hosts", port, host_key)
    with _connection(port, known, client_key) as conn, pytest.raises(MailkitError, match="printed more than 1048576"):
        conn.run(["flood"], max_output=1024 * 1024)


def test_a_host_that_never_ends_a_command_is_cut_off(server, client_key, tmp_path) -> None:
    port, host_key = server
    known = _known_hosts(tmp_path / "known_hosts", port, host_key)
    started = time.monotonic()
    with _connection(port, known, client_key) as conn, pytest.raises(MailkitError, match="timed out after 1"):
        conn.run(["hang"], timeout=1)
    assert time.monotonic() - started < 10
    assert Connection.run.__kwdefaults__["timeout"] is not None, "no command waits forever unless it says so"
