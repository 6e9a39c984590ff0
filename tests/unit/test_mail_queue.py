"""Postfix's queue read as hostile text: one parser for every reader (status rows, delay reasons, the load test)."""

from __future__ import annotations

import pytest

from mailkit.core.errors import MailkitError
from mailkit.core.result import Result
from mailkit.server.mail_queue import MAX_CHARS, MAX_MESSAGES, MAX_REASON, SAMPLE, parse_queue, read_queue


class Postqueue:
    def __init__(self, stdout: str, exited: int = 0, stderr: str = "") -> None:
        self.result = Result("postqueue -j", stdout, stderr, exited)
        self.asked: list[list[str]] = []

    def run(self, argv: list[str], **_: object) -> Result:
        self.asked.append(argv)
        return self.result


def test_lines_that_are_not_message_objects_are_counted_not_crashed_on() -> None:
    text = SAMPLE + "[1, 2]\n" + "{broken\n" + '"a string"\n' + '{"queue_name": "hold", "recipients": "nope"}\n'
    queue = parse_queue(text)
    assert [(m.queue_name, m.delay_reasons) for m in queue.messages] == [
        ("deferred", ("connect to mx.example.net[198.51.100.7]:25: Connection timed out",)),
        ("hold", ()),
    ]
    assert queue.unreadable == 3 and queue.ok and queue.deferred == 1


def test_a_huge_answer_is_bounded_in_size_count_and_reason_length() -> None:
    line = '{"queue_name": "deferred", "recipients": [{"delay_reason": "' + "x" * 5000 + '"}]}\n'
    queue = parse_queue(line * (MAX_MESSAGES + 50))
    assert len(queue.messages) <= MAX_MESSAGES
    assert all(len(r) == MAX_REASON for r in queue.delay_reasons)
    assert len(parse_queue("\n" * (MAX_CHARS + 10) + SAMPLE).messages) == 0, "only the first MAX_CHARS are read"


def test_a_postqueue_that_fails_is_an_error_for_the_status_and_the_load_test() -> None:
    from mailkit.clients.loadtest import queued
    from mailkit.status.inside import queue_rows

    broken = Postqueue("", exited=69, stderr="postqueue: fatal: Queue report unavailable - mail system is down")
    queue = read_queue(broken)  # type: ignore[arg-type]
    assert not queue.ok and "mail system is down" in queue.error and queue.messages == ()
    (row,) = queue_rows(queue)
    assert not row.ok and "mail system is down" in row.detail
    with pytest.raises(MailkitError, match="cannot be read"):
        queued(broken)  # type: ignore[arg-type]
    assert queued(Postqueue(SAMPLE))[0].queue_id == "4AD8F29601C"  # type: ignore[arg-type]
    (row,) = queue_rows(read_queue(Postqueue(SAMPLE)))  # type: ignore[arg-type]
    assert row.ok and row.detail == "1 messages (1 deferred)"
