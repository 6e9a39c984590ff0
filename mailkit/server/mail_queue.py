"""Postfix's queue as ``postqueue -j`` reports it (one JSON object per message), read as hostile text: bounded in
size, time and count, a line that is not a message object skipped and counted, never a crash.

>>> queue = parse_queue(SAMPLE + "not json\\n")
>>> [(m.queue_id, m.queue_name, m.delay_reasons) for m in queue.messages], queue.unreadable
([('4AD8F29601C', 'deferred', ('connect to mx.example.net[198.51.100.7]:25: Connection timed out',))], 1)
>>> queue.deferred
1
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mailkit.core.ssh import Connection

#: The most of ``postqueue -j``'s answer that is read: about 10,000 small messages.
MAX_CHARS = 8 * 1024 * 1024
#: The most messages kept from it (a queue longer than that is a finding of its own).
MAX_MESSAGES = 20_000
#: How long ``postqueue -j`` may take.
TIMEOUT = 60
#: The longest delay reason kept (Postfix's are one line of a remote server's reply).
MAX_REASON = 300

SAMPLE = (
    '{"queue_name": "deferred", "queue_id": "4AD8F29601C", "arrival_time": 1796495895, "message_size": 591, '
    '"sender": "alice@example.org", "recipients": [{"address": "dana@example.net", '
    '"delay_reason": "connect to mx.example.net[198.51.100.7]:25: Connection timed out"}]}\n'
)


@dataclass(frozen=True)
class QueuedMessage:
    """One message in the queue: where it waits (active, deferred, hold, incoming) and why."""

    queue_id: str
    queue_name: str
    delay_reasons: tuple[str, ...]

    @classmethod
    def parse(cls, fields: dict[str, Any]) -> QueuedMessage:
        recipients = fields.get("recipients")
        reasons = tuple(
            str(r["delay_reason"])[:MAX_REASON]
            for r in (recipients if isinstance(recipients, list) else [])
            if isinstance(r, dict) and r.get("delay_reason")
        )
        return cls(str(fields.get("queue_id", ""))[:40], str(fields.get("queue_name", ""))[:20], reasons)


@dataclass(frozen=True)
class MailQueue:
    """What ``postqueue -j`` said: the messages, how many lines were not messages, and an error when it failed."""

    messages: tuple[QueuedMessage, ...] = ()
    unreadable: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def deferred(self) -> int:
        return sum(1 for m in self.messages if m.queue_name == "deferred")

    @property
    def delay_reasons(self) -> list[str]:
        return [reason for m in self.messages for reason in m.delay_reasons]


def parse_queue(text: str) -> MailQueue:
    """The messages in ``postqueue -j``'s output, at most :data:`MAX_MESSAGES` of the first :data:`MAX_CHARS`."""
    messages: list[QueuedMessage] = []
    unreadable = 0
    for line in text[:MAX_CHARS].splitlines():
        if not line.strip():
            continue
        try:
            fields = json.loads(line)
        except ValueError:
            unreadable += 1
            continue
        if not isinstance(fields, dict):
            unreadable += 1
        elif len(messages) < MAX_MESSAGES:
            messages.append(QueuedMessage.parse(fields))
    return MailQueue(tuple(messages), unreadable)


def read_queue(conn: Connection) -> MailQueue:
    """Postfix's queue on ``conn``; a ``postqueue`` that fails gives an empty queue with its error."""
    seen = conn.run(["postqueue", "-j"], check=False, timeout=TIMEOUT)
    if not seen.ok:
        return MailQueue(error=(seen.stderr.strip() or f"postqueue -j exited {seen.exited}")[:200])
    return parse_queue(seen.stdout)
