"""Many messages at once, and where each one ended: the reliability suite's sender and counters.

The sender (:mod:`mailkit.remote.load_sender`) runs on the outside host (Python's smtplib, one thread per
connection) and retries what the server did not accept, as a real MTA does from its queue. Every message has a
unique Message-ID, so the mail host can be asked where each one ended and how many times. A message whose
connection broke after its content was sent is *ambiguous* (the server may have taken it): SMTP is at-least-once
there, so only unambiguous messages must arrive exactly once.

>>> from mailkit.remote.load_sender import message_id
>>> message_id("r1", 7)
'<mk-load-r1-7@example.net>'
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field

from mailkit.clients.remote_client import run_program
from mailkit.core.errors import MailkitError
from mailkit.core.ssh import Connection
from mailkit.core.values import LocalPart
from mailkit.remote import source
from mailkit.server.mail_queue import QueuedMessage, read_queue

#: The program that sends them, run on the outside host (:mod:`mailkit.remote.load_sender`).
SENDER = source("load_sender")


@dataclass(frozen=True)
class Sent:
    """What the sender saw: accepted message numbers, ambiguous ones, retries, failures, wall time."""

    run: str
    count: int
    accepted: frozenset[int]
    ambiguous: frozenset[int]
    retries: int
    failed: tuple[tuple[int, str], ...]
    seconds: float

    @property
    def per_second(self) -> float:
        return len(self.accepted) / self.seconds if self.seconds else 0.0


def send_many(
    outside: Connection,
    host: str,
    recipients: list[str],
    count: int,
    *,
    run: str,
    connections: int = 10,
    give_up_after: float = 300,
) -> Sent:
    """Send ``count`` messages from ``outside`` to ``host``:25 over ``connections`` parallel connections."""
    for address in recipients:
        LocalPart(address.split("@")[0])
    if not re.fullmatch(r"[a-z0-9]{1,20}", run):
        raise MailkitError(f"run name {run!r}: lower case letters and digits only")
    request = {"host": host, "recipients": recipients, "count": count, "run": run,
               "connections": connections, "give_up_after": give_up_after}  # fmt: skip
    seen = run_program(outside, SENDER, request, timeout=int(give_up_after) + count + 120)
    if "accepted" not in seen:
        raise MailkitError(f"the load sender failed: {seen}")
    return Sent(
        run,
        count,
        frozenset(seen["accepted"]),
        frozenset(seen["ambiguous"]),
        seen["retries"],
        tuple((n, why) for n, why in seen["failed"]),
        seen["seconds"],
    )


@dataclass(frozen=True)
class Delivered:
    """Where the messages of one run are on the mail host: (Maildir folder, message number) -> copies."""

    copies: Counter[tuple[str, int]] = field(default_factory=Counter)
    #: When each copy of a message was delivered (epoch seconds, from its Maildir file name).
    times: dict[int, list[int]] = field(default_factory=dict)

    def numbers(self) -> Counter[int]:
        counted: Counter[int] = Counter()
        for (_, n), copies in self.copies.items():
            counted[n] += copies
        return counted

    def folders(self, n: int) -> set[str]:
        return {folder for (folder, m) in self.copies if m == n}


def delivered(mail: Connection, run: str, base: str = "/var/vmail") -> Delivered:
    """Every copy of this run's messages in the Maildirs under ``base``, by the mailbox directory holding it."""
    script = (
        f"grep -r -m1 -H -o 'Message-ID: <mk-load-{run}-[0-9]*@' {base} --include='*' 2>/dev/null "
        "| grep -E '/(new|cur)/' || true"
    )
    copies: Counter[tuple[str, int]] = Counter()
    times: dict[int, list[int]] = {}
    for line in mail.run(["sh", "-c", script], timeout=300).stdout.splitlines():
        path, _, found = line.partition(":Message-ID: ")
        mailbox = re.sub(r"/(\.[^/]+/)?(new|cur)/[^/]+$", "", path)
        n = int(found.rsplit("-", 1)[1].rstrip("@"))
        copies[(mailbox, n)] += 1
        stamp = re.match(r"(\d+)\.", path.rsplit("/", 1)[1])
        times.setdefault(n, []).append(int(stamp.group(1)) if stamp else 0)
    return Delivered(copies, times)


def wait_delivered(mail: Connection, run: str, expected: int, seconds: float = 300, flush: bool = True) -> Delivered:
    """Poll until each of the run's messages 0 to ``expected - 1`` has a copy delivered (or time is up).

    Messages are counted, not copies: a copy doubled by a restart must not stand in for one still queued.
    With ``flush``, what waits in the deferred queue is retried every ten seconds (``postqueue -f``), as an
    admin would after a restart, instead of at Postfix's next retry minutes later.
    """
    deadline = time.monotonic() + seconds
    flushed = 0.0
    while True:
        found = delivered(mail, run)
        if len(set(range(expected)) & set(found.numbers())) == expected or time.monotonic() > deadline:
            return found
        if flush and time.monotonic() - flushed > 10:
            mail.run(["postqueue", "-f"], timeout=60)
            flushed = time.monotonic()
        time.sleep(2)


def queued(mail: Connection) -> list[QueuedMessage]:
    """The messages in Postfix's queue; a queue that cannot be read is an error, not an empty queue."""
    queue = read_queue(mail)
    if not queue.ok or queue.unreadable:
        raise MailkitError(f"Postfix's queue cannot be read: {queue.error or f'{queue.unreadable} lines not JSON'}")
    return list(queue.messages)
