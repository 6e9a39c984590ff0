"""What moving in costs (the moving-in chapter, issue 19): ``doveadm sync`` bringing the cloud account home, next to
the floor of any IMAP migration, reading every message that comes home once over IMAP, side by side in one run.

Run as root on a lab whose mail host has parts 1-4 (``mailkit lab reset --to-part 4``):
    .venv/bin/python bench/moving_in.py [--messages 5000] [--large 4] [--runs 2]

Each run: the lab's cloud provider is set up with the generated account (``--messages``, of which ``--large`` carry a
10-25 MB attachment), the mail host is reset to part 4 (empty of old mail), then, in alternating order:

- **floor**: a plain IMAP fetch of every message of the folders that come home (Python's imaplib, on the outside
  host, hashing each body: the least any migration must do, reading it all once);
- **first sync**: ``doveadm sync`` from the mail host, which reads the same and also writes it into the Maildirs;
- **second sync**: the same command again, with nothing new (what the final sync at the cutover costs when little
  arrived).

Printed: messages, MB, seconds, messages/s and MB/s of each, and the first sync's time as a ratio of the floor's.
The mail host is left at part 4 with the account moved in.
"""

from __future__ import annotations

import argparse
import statistics
import time

from mailkit.clients.inventory import take_inventory
from mailkit.core.values import EmailAddress, Hostname, Password
from mailkit.guide import moving_in
from mailkit.lab import cloud_account, cloud_provider
from mailkit.lab.lab import Lab
from mailkit.lab.lab_target import lab_connection
from mailkit.server.old_account import OldAccount

USER = EmailAddress("alice@example.org")


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--messages", type=int, default=5000, help="messages in the account (default 5000)")
    args.add_argument("--large", type=int, default=4, help="of them with a 10-25 MB attachment (default 4)")
    args.add_argument("--runs", type=int, default=2, help="runs, each with both orders' halves (default 2)")
    options = args.parse_args()
    lab = Lab()
    password = Password("bench-app-password-" + lab.passwords(["cloud"])["cloud"].reveal()[:8])
    account = cloud_account.generate(count=options.messages, seed=1, large=options.large)
    with lab_connection("outside") as outside:
        made = cloud_provider.setup(outside, lab.ca, account, password)
        old = OldAccount(Hostname(made.host), EmailAddress(made.user), password)
        source = take_inventory(outside, made.host, made.user, password, seconds=3000)
    kept = moving_in.kept_folders(source)
    count = sum(len(source.folders[name].entries) for name in kept)
    size = sum(e.size for name in kept for e in source.folders[name].entries)
    times: dict[str, list[float]] = {"floor": [], "first sync": [], "second sync": []}
    for run in range(options.runs):
        lab.reset(to_part=4)
        with lab_connection("mail") as mail, lab_connection("outside") as outside:

            def floor() -> None:
                started = time.monotonic()
                take_inventory(outside, str(old.host), str(old.user), password, seconds=3000, only=kept)
                times["floor"].append(time.monotonic() - started)

            def sync() -> None:
                started = time.monotonic()
                moving_in.sync(mail, old, USER)
                times["first sync"].append(time.monotonic() - started)
                started = time.monotonic()
                moving_in.sync(mail, old, USER)
                times["second sync"].append(time.monotonic() - started)

            for step in (floor, sync) if run % 2 == 0 else (sync, floor):
                step()
    print(f"account: {options.messages} messages ({account.size / 1e6:.1f} MB); coming home: {count} in "
          f"{len(kept)} folders, {size / 1e6:.1f} MB; {options.runs} run(s), medians")  # fmt: skip
    print(f"{'':<13}{'seconds':>9}{'msg/s':>9}{'MB/s':>8}{'x floor':>9}")
    floor_median = statistics.median(times["floor"])
    for name, values in times.items():
        median = statistics.median(values)
        rate = (f"{count / median:>9.0f}{size / 1e6 / median:>8.1f}") if name != "second sync" else f"{'':>17}"
        print(f"{name:<13}{median:>9.2f}{rate}{median / floor_median:>9.2f}")


if __name__ == "__main__":
    main()
