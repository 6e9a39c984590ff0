"""The load test's wait counts messages, not copies (the project's CI: a message doubled by a restart stood in
for one still in the deferred queue, and the test read the Maildirs before it arrived)."""

from __future__ import annotations

import pytest

from mailkit.clients import loadtest
from mailkit.core.result import Result


class Maildirs:
    """A mail host whose Maildirs hold, at each look, the next of ``looks`` (message number -> copies)."""

    def __init__(self, looks: list[dict[int, int]]) -> None:
        self.looks = looks
        self.asked: list[list[str]] = []

    def run(self, argv: list[str], **_: object) -> Result:
        self.asked.append(argv)
        if argv[0] == "postqueue":
            return Result("postqueue -f", "", "", 0)
        look = self.looks.pop(0) if len(self.looks) > 1 else self.looks[0]
        lines = [
            f"/var/vmail/example.org/alice/new/{1796662000 + n}.M{c}.mail:Message-ID: <mk-load-r1-{n}@"
            for n, copies in look.items()
            for c in range(copies)
        ]
        return Result("grep", "\n".join(lines), "", 0)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loadtest.time, "sleep", lambda _: None)


def test_a_doubled_copy_does_not_stand_in_for_a_message_still_queued() -> None:
    host = Maildirs([{0: 2, 1: 0}, {0: 2, 1: 1}])
    found = loadtest.wait_delivered(host, "r1", 2)  # type: ignore[arg-type]
    assert found.numbers() == {0: 2, 1: 1}
    assert ["postqueue", "-f"] in host.asked, "the deferred queue was flushed while message 1 waited"


def test_time_up_returns_what_is_there_for_the_test_to_name_the_missing() -> None:
    host = Maildirs([{0: 1}])
    found = loadtest.wait_delivered(host, "r1", 2, seconds=0)  # type: ignore[arg-type]
    assert found.numbers() == {0: 1}
