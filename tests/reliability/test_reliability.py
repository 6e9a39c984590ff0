"""Nothing lost: mail accepted is mail delivered, exactly once, under load, restarts and faults.

Runs after the notebooks (tests/lab/test_30), so the mail host has parts 1 to 4 applied: postscreen,
rspamd and Sieve are all on the path. Small by default (CI); the full size is a documented command:

    MAILKIT_LOAD_MESSAGES=5000 MAILKIT_TEST_RELEASES=trixie .venv/bin/pytest tests/lab/test_30_notebooks.py \\
        tests/reliability -p no:cacheprovider -s

(the load figures are printed with ``-s``).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator

import pytest

from mailkit.clients import loadtest
from mailkit.core.ssh import Connection
from mailkit.lab.lab import Lab
from mailkit.lab.lab_target import lab_connection

pytestmark = pytest.mark.lab

HOST = "mail.example.org"
MAILBOXES = ["alice@example.org", "bob@example.org", "carol@b.example.org"]
MESSAGES = int(os.environ.get("MAILKIT_LOAD_MESSAGES", "200"))


@pytest.fixture(scope="module")
def hosts(finished: Lab) -> Iterator[tuple[Connection, Connection]]:
    mail, outside = lab_connection("mail"), lab_connection("outside")
    yield mail, outside
    mail.run(["systemctl", "start", "dovecot"], check=False)
    mail.close()
    outside.close()


def _run() -> str:
    return secrets.token_hex(4)


def _mailbox_dir(address: str) -> str:
    local, domain = address.split("@")
    return f"/var/vmail/{domain}/{local}"


def _assert_each_once_in_its_mailbox(
    sent: loadtest.Sent,
    found: loadtest.Delivered,
    recipients: list[str] = MAILBOXES,
    cut: tuple[float, float] | None = None,
) -> list[int]:
    """Every accepted message delivered, in its recipient's Maildir, once; returns the doubled ones.

    With ``cut`` (the seconds a restart took), a message may arrive twice if a delivery was cut by the
    restart (SMTP and LMTP are at-least-once: the mailbox had stored it, the confirmation was lost),
    and only if its first copy was delivered while the restart ran.
    """
    counts = found.numbers()
    missing = sorted(n for n in sent.accepted if counts[n] == 0)
    assert not missing, f"accepted but never delivered: {missing[:10]} ({len(missing)} in all)"
    doubled = sorted(n for n, c in counts.items() if c > 1 and n not in sent.ambiguous)
    if cut is None:
        assert not doubled, f"delivered twice: {doubled[:10]}"
    else:
        start, end = cut
        outside = [n for n in doubled if not start - 2 <= min(found.times[n]) <= end + 2]
        assert not outside, f"delivered twice, not during the restart: {outside[:10]}"
    stray = sorted(n for n in counts if n not in sent.accepted and n not in sent.ambiguous)
    assert not stray, f"delivered but never accepted: {stray[:10]}"
    for n in sent.accepted:
        wanted = {_mailbox_dir(recipients[n % len(recipients)])}
        assert found.folders(n) == wanted, f"message {n} in {found.folders(n)}, not in {wanted}"
    return doubled


def _all_delivered(mail: Connection, sent: loadtest.Sent, cut: tuple[float, float] | None = None) -> str:
    """Every message accepted, each delivered once (see ``cut``), the queue empty; a one-line summary."""
    assert len(sent.accepted) == sent.count and not sent.failed, f"the sender gave up: {sent.failed[:5]}"
    found = loadtest.wait_delivered(mail, sent.run, sent.count)
    doubled = _assert_each_once_in_its_mailbox(sent, found, cut=cut)
    assert loadtest.queued(mail) == [], "nothing left in the queue"
    return (
        f"{sent.count} messages in {sent.seconds:.1f} s ({sent.per_second:.1f}/s), {sent.retries} retries, "
        f"{len(sent.ambiguous)} ambiguous, 0 lost, {len(doubled)} doubled"
    )


def test_load_every_message_arrives_exactly_once(hosts: tuple[Connection, Connection]) -> None:
    mail, outside = hosts
    sent = loadtest.send_many(outside, HOST, MAILBOXES, MESSAGES, run=_run())
    print("\nload over 10 connections:", _all_delivered(mail, sent))


def test_load_with_a_restart_in_the_middle_loses_nothing(hosts: tuple[Connection, Connection]) -> None:
    import threading

    mail, outside = hosts
    run = _run()
    result: dict[str, loadtest.Sent] = {}
    sender = threading.Thread(
        target=lambda: result.update(sent=loadtest.send_many(outside, HOST, MAILBOXES, MESSAGES, run=run))
    )
    sender.start()
    # Restart both when about a third has arrived: the senders see refusals and retry.
    deadline = time.monotonic() + 300
    while sum(loadtest.delivered(mail, run).copies.values()) < MESSAGES // 3 and time.monotonic() < deadline:
        time.sleep(1)
    started = time.time()
    mail.run(["systemctl", "restart", "postfix", "dovecot"], timeout=120)
    cut = (started, time.time())
    sender.join()
    # Deliveries cut by the restart wait in the deferred queue (retried after minutes): try them now.
    mail.run(["postqueue", "-f"], timeout=60)
    print("\nload with a restart (doubled: deliveries the restart cut):", _all_delivered(mail, result["sent"], cut))


def test_dovecot_stopped_mail_waits_in_the_queue_then_arrives_once(hosts: tuple[Connection, Connection]) -> None:
    mail, outside = hosts
    run, count = _run(), 20
    mail.run(["systemctl", "stop", "dovecot"], timeout=60)
    try:
        sent = loadtest.send_many(outside, HOST, MAILBOXES, count, run=run, connections=4)
        assert len(sent.accepted) == count, "Postfix accepts while Dovecot is down"
        time.sleep(3)
        deferred = [m for m in loadtest.queued(mail) if m.queue_name in ("deferred", "active")]
        assert len(deferred) >= count, f"only {len(deferred)} of {count} messages queued"
        reasons = " ".join(reason for m in deferred for reason in m.delay_reasons)
        assert "dovecot-lmtp" in reasons, f"deferred for another reason: {reasons[:300]}"
        assert sum(loadtest.delivered(mail, run).copies.values()) == 0, "nothing delivered without Dovecot"
    finally:
        mail.run(["systemctl", "start", "dovecot"], timeout=60)
    mail.run(["postqueue", "-f"], timeout=60)
    found = loadtest.wait_delivered(mail, run, count, seconds=120)
    _assert_each_once_in_its_mailbox(sent, found)
    assert loadtest.queued(mail) == []


def test_full_mailbox_keeps_mail_queued_until_there_is_room(hosts: tuple[Connection, Connection]) -> None:
    mail, outside = hosts
    run, count = _run(), 5
    address = MAILBOXES[0]
    home = _mailbox_dir(address)
    # A 1 MiB filesystem over alice's Maildir, filled up: her deliveries find no room.
    mail.run(["sh", "-c", f"mount -t tmpfs -o size=1m,uid=5000,gid=5000,mode=0700 mailkit-full {home}"], timeout=30)
    try:
        mail.run(["sh", "-c", f"dd if=/dev/zero of={home}/filler bs=64k 2>/dev/null; true"], timeout=30)
        sent = loadtest.send_many(outside, HOST, [address], count, run=run, connections=1)
        assert len(sent.accepted) == count, "Postfix accepts: the disk that is full is the mailbox's"
        time.sleep(3)
        queued = [m for m in loadtest.queued(mail) if m.queue_name in ("deferred", "active")]
        assert len(queued) >= count, f"only {len(queued)} of {count} kept in the queue"
        reasons = " ".join(reason for m in queued for reason in m.delay_reasons)
        assert " 4" in reasons or "temporar" in reasons.lower(), f"not a temporary failure: {reasons[:300]}"
        assert sum(loadtest.delivered(mail, run).copies.values()) == 0
        mail.run(["rm", "-f", f"{home}/filler"])
        mail.run(["postqueue", "-f"], timeout=60)
        found = loadtest.wait_delivered(mail, run, count, seconds=120)
        _assert_each_once_in_its_mailbox(sent, found, [address])
        assert loadtest.queued(mail) == []
    finally:
        mail.run(["umount", home], check=False, timeout=30)
