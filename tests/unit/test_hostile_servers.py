"""A server mailkit checks may be hostile (security review, finding 6): the probe, the MTA-STS fetch and every
command over SSH are bounded in bytes and time.

Each hostile server is a small one on loopback, made here (fakes for mailkit's own logic; the lab tests probe
real servers).
"""

from __future__ import annotations

import shlex
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailkit.core.errors import MailkitError
from mailkit.core.result import Result
from mailkit.domain.mtasts import fetch_policy
from mailkit.status.vantage import CONNECTION_BYTES, run_probe
from tests.loopback import serve


def _flood_smtp(sock: socket.socket) -> None:
    """Endless continuation lines of a greeting: a reply that never ends."""
    line = b"220-" + b"x" * 1000 + b"\r\n"
    for _ in range(100_000):
        sock.sendall(line)


def _trickle(sock: socket.socket) -> None:
    """A byte every 0.3 s, never a whole line: each read succeeds, the whole never comes."""
    for _ in range(1000):
        sock.sendall(b"2")
        time.sleep(0.3)


@pytest.fixture
def flooding_server() -> Iterator[int]:
    yield from serve(_flood_smtp)


@pytest.fixture
def trickling_server() -> Iterator[int]:
    yield from serve(_trickle)


def _request(port: int) -> dict[str, object]:
    return {
        "hostname": "mail.example.org",
        "addresses": {"4": ["127.0.0.1"]},
        "ports": [port],
        "tls": [[port, "smtp-starttls"]],
        "relay": [],
        "roles": [],
        "helo": "outside.example.net",
        "timeout": 2,
    }


def _within(seconds: float, call: Callable[[], object]) -> object:
    """What ``call`` returns (or raises), failing the test if it takes longer than ``seconds``."""
    done: list[tuple[object, BaseException | None]] = []

    def run() -> None:
        try:
            done.append((call(), None))
        except BaseException as exc:  # handed to the test's thread
            done.append((None, exc))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert done, f"still running after {seconds} s"
    value, error = done[0]
    if error is not None:
        raise error
    return value


def test_a_reply_that_never_ends_is_cut_off_at_the_connection_budget(flooding_server: int) -> None:
    seen = _within(60, lambda: run_probe(_request(flooding_server), None))
    assert isinstance(seen, dict)
    error = seen["tls"][str(flooding_server)]["error"]
    assert "the server sent more than" in error, error
    assert CONNECTION_BYTES <= 1024 * 1024, "a budget far below what took the probe to 646 MiB"


def test_a_server_that_trickles_meets_the_probes_deadline(trickling_server: int) -> None:
    started = time.monotonic()
    seen = _within(30, lambda: run_probe(_request(trickling_server), None, deadline=3))
    assert isinstance(seen, dict)
    assert seen["error"] == "the probe gave up after 3 s"
    assert seen["ports"]["127.0.0.1"] == {str(trickling_server): "open"}, "what it saw before is kept"
    assert time.monotonic() - started < 15


@pytest.fixture
def tls_context(tmp_path: Path) -> ssl.SSLContext:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *(
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
            ),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=mta-sts.example.org"),
            *("-addext", "subjectAltName=DNS:mta-sts.example.org"),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def test_the_mta_sts_fetch_has_one_deadline_for_the_whole_fetch(tls_context: ssl.SSLContext, tmp_path: Path) -> None:
    def slow_policy(sock: socket.socket) -> None:
        sock.recv(4096)
        _trickle(sock)

    server = serve(slow_policy, wrap=tls_context)
    port = next(server)
    try:
        started = time.monotonic()
        with pytest.raises(MailkitError, match="took longer than 2 s"):
            _within(
                30,
                lambda: fetch_policy(
                    "example.org", "127.0.0.1", port=port, cafile=str(tmp_path / "cert.pem"), timeout=2
                ),
            )
        assert time.monotonic() - started < 10
    finally:
        next(server, None)


class _Vantage:
    """Stands in for the outside host's connection; records how the probe was started."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], dict[str, object]]] = []

    def run(self, argv: list[str], **kwargs: object) -> Result:
        self.calls.append((list(argv), kwargs))
        return Result(shlex.join(argv), '{"ports": {}, "tls": {}, "relay": [], "roles": []}', "", 0)


def test_the_probe_runs_unprivileged_and_is_killed_where_it_runs_past_its_deadline() -> None:
    """Security review, finding 9: ``--from admin@host`` needs no root, so the probe never goes through sudo."""
    vantage = _Vantage()
    run_probe(_request(25), vantage, deadline=7)  # type: ignore[arg-type]
    ((argv, kwargs),) = vantage.calls
    assert kwargs["sudo"] is False
    assert argv[:4] == ["timeout", "-k", "5", "17"] and argv[4:6] == ["python3", "-c"]
    assert kwargs["timeout"] == 37


def test_the_probe_is_a_module_its_tests_can_read() -> None:
    """Issue 21: the program sent to the outside host is a module here (linted, type-checked, unit-tested)."""
    import io

    from mailkit.remote import probe

    saved = dict(probe.req)
    probe.req.update({"connection_bytes": 1000, "reply_lines": 2})
    try:
        replies = probe.Bounded(io.BytesIO(b"250-first\r\n250-second\r\n250 third\r\n"), probe.Budget())
        assert replies.readline() == b"250-first\r\n" and replies.readline() == b"250-second\r\n"
        with pytest.raises(probe.TooMuch, match="more than 2 lines"):
            replies.readline()
    finally:
        probe.req.clear()
        probe.req.update(saved)
