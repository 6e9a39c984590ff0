"""What the relay costs (part 3, section 8): a message's way from the mail host to another provider's Maildir,
directly and through the relay, side by side in one run.

Run as root on the lab that ``mailkit guide run --parts 1,2,3`` leaves up:
    .venv/bin/python bench/relay.py [--messages 20]

The lab's relay service is started on the outside host (mailkit/lab/relay_provider.py). Messages go from the mail
host (``sendmail``) to ``dana@example.net`` at the lab's independent receiver, in blocks that alternate between
direct delivery and the relay (the smarthost applied, then removed: the engine's removal), so drift in the machine's
load falls on both. Each is timed from ``sendmail`` to its file in the receiver's Maildir: the hosts share this
machine's kernel, so one clock serves both ends. The mail host is left delivering directly.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import time

from mailkit.core import engine
from mailkit.core.ssh import Connection
from mailkit.core.values import Hostname
from mailkit.guide import smarthost
from mailkit.lab import relay_provider
from mailkit.lab.lab import Lab
from mailkit.lab.lab_target import lab_connection
from mailkit.lab.receiver import RECEIVER
from mailkit.lab.relay_provider import CUSTOMER, RELAY

DANA = "dana@example.net"
ARRIVED = 'f=$(grep -l -F -- "$2" "$1"/new/* "$1"/cur/* 2>/dev/null | head -n 1); [ -n "$f" ] && stat -c %.9Y "$f"'


def one(mail: Connection, outside: Connection, way: str) -> float:
    """Seconds from ``sendmail`` on the mail host to the message's file at the receiver."""
    subject = f"bench relay {way} {secrets.token_hex(6)}"
    message = f"From: alice@example.org\nTo: {DANA}\nSubject: {subject}\n\nmeasured\n"
    started = time.time()
    mail.run(["/usr/sbin/sendmail", "-f", "alice@example.org", DANA], input=message)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen = outside.run(["sh", "-c", ARRIVED, "sh", RECEIVER.mailbox(DANA), subject], check=False)
        if seen.ok and seen.stdout.strip():
            return float(seen.stdout.strip()) - started
        time.sleep(0.05)
    raise SystemExit(f"{way}: a message did not arrive in 60 s")


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--messages", type=int, default=20, help="messages each way (default 20)")
    args.add_argument("--block", type=int, default=5, help="messages per block before switching (default 5)")
    options = args.parse_args()
    lab = Lab()
    password = lab.passwords([RELAY.host])[RELAY.host]
    relay = smarthost.Smarthost(Hostname(RELAY.host), CUSTOMER, password, spf_include=RELAY.spf_include)
    times: dict[str, list[float]] = {"direct": [], "relay": []}
    with lab_connection("mail") as mail, lab_connection("outside") as outside:
        relay_provider.setup(outside, lab.ca, password)
        try:
            while min(len(t) for t in times.values()) < options.messages:
                for way, resources in (("direct", smarthost.removal()), ("relay", relay.resources())):
                    engine.apply(mail, resources)
                    for _ in range(min(options.block, options.messages - len(times[way]))):
                        times[way].append(one(mail, outside, way))
        finally:
            engine.apply(mail, smarthost.removal())
    direct, relayed = statistics.median(times["direct"]), statistics.median(times["relay"])
    print(
        json.dumps(
            {
                "messages each way": options.messages,
                "direct median s": round(direct, 3),
                "relay median s": round(relayed, 3),
                "relay / direct": round(relayed / direct, 2),
                "direct max s": round(max(times["direct"]), 3),
                "relay max s": round(max(times["relay"]), 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
