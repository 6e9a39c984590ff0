"""The outside host's SMTP/IMAP client program run in batches (issue 22, item 3: the re-checks in one
conversation from the outside host): the conversations of a batch run at the same time, the answers come back in
the order asked, one failure stays that conversation's own, and the host side believes nothing else.

The program runs here with this machine's ``python3``, against a slow SMTP greeter on loopback (a fake for
mailkit's own logic; the lab tests talk to real Postfix and Dovecot).
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mailkit.clients.remote_client import CLIENT, MAX_BATCH, run_clients
from mailkit.core.errors import MailkitError, UsageError
from mailkit.core.local import run_local
from mailkit.core.result import Result
from tests.loopback import serve


class Here:
    """A Connection that runs the program on this machine."""

    def run(self, argv: list[str], input: str = "", check: bool = True, timeout: int = 60) -> Result:
        return run_local([sys.executable, *argv[1:]], input=input, check=check, timeout=timeout)


class Canned:
    """A Connection whose program answers ``stdout``, whatever it was asked."""

    def __init__(self, stdout: str) -> None:
        self.stdout = stdout

    def run(self, argv: list[str], input: str = "", check: bool = True, timeout: int = 60) -> Result:
        return Result(" ".join(argv[:1]), self.stdout, "", 0)


@pytest.fixture
def greeter() -> Iterator[tuple[int, dict[str, int]]]:
    """An SMTP server that waits before its greeting, counting how many clients it holds at once."""
    lock = threading.Lock()
    seen = {"now": 0, "most": 0}

    def talk(sock: socket.socket) -> None:
        with lock:
            seen["now"] += 1
            seen["most"] = max(seen["most"], seen["now"])
        try:
            time.sleep(0.5)
            sock.sendall(b"220 slow.example.net ESMTP\r\n")
            for line in sock.makefile("rb"):
                if line.upper().startswith(b"EHLO"):
                    sock.sendall(b"250-slow.example.net\r\n250 8BITMIME\r\n")
                elif line.upper().startswith(b"QUIT"):
                    sock.sendall(b"221 bye\r\n")
                    break
        finally:
            with lock:
                seen["now"] -= 1

    for port in serve(talk, at_once=True, timeout=30):
        yield port, seen


def _smtp(port: int) -> dict[str, Any]:
    return {"protocol": "smtp", "host": "127.0.0.1", "port": port, "mode": "plain", "timeout": 10}


def test_a_batch_runs_its_conversations_at_once_and_answers_in_order(greeter: tuple[int, dict[str, int]]) -> None:
    port, seen = greeter
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    nobody = closed.getsockname()[1]  # bound, never listening: refused
    answers = run_clients(Here(), [_smtp(port), _smtp(port), _smtp(nobody), _smtp(port)])  # type: ignore[arg-type]
    closed.close()
    assert [a.get("banner_ok") for a in answers] == [True, True, None, True]
    assert answers[2]["error"].startswith("ConnectionRefusedError"), answers[2]
    assert all(a["starttls_offered"] is False for i, a in enumerate(answers) if i != 2)
    assert seen["most"] >= 2, "the conversations of one batch overlap"


def test_a_batch_is_bounded_and_a_real_password_never_goes_in_clear() -> None:
    with pytest.raises(UsageError, match="1 to 32"):
        run_clients(Canned("[]"), [])  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="1 to 32"):
        run_clients(Canned("[]"), [_smtp(25)] * (MAX_BATCH + 1))  # type: ignore[arg-type]
    clear = {**_smtp(587), "user": "alice@example.org", "password": "alice's password"}
    with pytest.raises(UsageError, match="never sent without TLS"):
        run_clients(Canned("[]"), [_smtp(25), clear])  # type: ignore[arg-type]


@pytest.mark.parametrize("stdout", ["[{}]", '{"banner_ok": true}', '[{}, "x"]', "[{}, {}, {}]", "not json"])
def test_an_answer_that_is_not_one_dict_per_conversation_is_not_believed(stdout: str) -> None:
    with pytest.raises(MailkitError):
        run_clients(Canned(stdout), [_smtp(25), _smtp(587)])  # type: ignore[arg-type]


def test_the_program_and_the_host_side_agree_on_the_bound() -> None:
    assert f"\nMAX_BATCH = {MAX_BATCH}\n" in CLIENT
