"""Where the guide's time goes, next to the bare floor, in one run.

Run as root:  .venv/bin/python bench/guide.py [--release trixie] [--parts 1,2,3,4] [--no-demos]

1. The guide, on a fresh mail host, with every cell timed (nbclient's timing), each cell counted in one
   bucket by what it does: package installs (``.install(``), applies (``engine.apply``: backups, writes,
   validation, reloads and restarts), plans, checks (``checks.report`` / ``verify``), DNS publishing, and
   the rest (imports, printing). ``--no-demos`` skips the optional demo (part 4's greylisting), as
   ``mailkit guide run --no-demos`` and the lab's snapshot builds do.
2. The floor, on a fresh mail host again: the same packages in one ``apt-get install`` (Postfix preseeded),
   then the guide's services restarted once. That is what a server with these packages costs at the least.

Printed side by side: seconds per bucket and the guide against the floor, then the slowest cells. The mail
host is reset after.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import datetime
from pathlib import Path

from mailkit.guide.chapters import DEFAULT_PARTS
from mailkit.guide.part4 import redis_package
from mailkit.guide.runner import run_guide
from mailkit.lab.lab import Lab, prepare_lab
from mailkit.lab.lab_target import lab_connection
from mailkit.server.target import DEMOS_ENV

BUCKETS = (
    ("package installs", (".install(",)),
    ("applies", ("engine.apply(", "receiver.ensure(")),
    ("plans", ("engine.plan(", "dnsrecords.plan(")),
    ("DNS publishing", ("publish(",)),
    ("checks", ("checks.report(", ".verify(", "part4_checks.", "part3_checks.")),
)
PACKAGES = {
    1: ["postfix", "postfix-lmdb", "bsd-mailx"],
    2: ["dovecot-core", "dovecot-imapd", "dovecot-lmtpd"],
    3: ["rspamd"],
    4: ["dovecot-sieve", "dovecot-managesieved"],
}
#: How many of the slowest cells are named.
SLOWEST = 15
SERVICES = {1: ["postfix"], 2: ["dovecot"], 3: ["rspamd"], 4: []}


def bucket(source: str) -> str:
    for name, needles in BUCKETS:
        if any(n in source for n in needles):
            return name
    return "the rest"


def cell_seconds(cell: dict) -> float:
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not start or not end:
        return 0.0
    parse = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def floor(release: str, parts: list[int]) -> float:
    packages = [p for n in parts for p in PACKAGES[n]]
    if 4 in parts:
        packages.append(redis_package(release))
    services = [s for n in parts for s in SERVICES[n]]
    script = (
        "set -e; export DEBIAN_FRONTEND=noninteractive\n"
        "printf '%s\\n' 'postfix postfix/main_mailer_type select Internet Site' "
        "'postfix postfix/mailname string mail.example.org' | debconf-set-selections\n"
        "apt-get update -q >/dev/null\n"
        f"apt-get install -y -q {' '.join(packages)} >/dev/null\n"
        f"systemctl restart {' '.join(services)}\n"
    )
    with lab_connection("mail") as mail:
        start = time.monotonic()
        mail.run(["sh", "-c", script], timeout=900)
        return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--release", default="trixie")
    parser.add_argument("--parts", default=DEFAULT_PARTS)
    parser.add_argument("--no-demos", action="store_true", help="skip the optional demo, as 'guide run --no-demos'")
    args = parser.parse_args()
    parts = [int(p) for p in args.parts.split(",")]
    prepare_lab(args.release, keep=False, progress=lambda _: None)
    totals: dict[str, float] = {name: 0.0 for name, _ in BUCKETS} | {"the rest": 0.0}
    slowest: list[tuple[float, str]] = []
    with tempfile.TemporaryDirectory() as out:
        start = time.monotonic()
        environ = {DEMOS_ENV: "no"} if args.no_demos else {}
        run = run_guide(parts, Path(out), record_timing=True, environ=environ)
        wall = time.monotonic() - start
        if not run.ok:
            raise SystemExit(f"the guide failed: {run.error}")
        for path in run.executed:
            for cell in json.loads(path.read_text())["cells"]:
                if cell["cell_type"] == "code":
                    source = "".join(cell["source"])
                    totals[bucket(source)] += cell_seconds(cell)
                    first = next((line for line in source.splitlines() if line and not line.startswith("#")), "")
                    slowest.append((cell_seconds(cell), f"{path.stem}: {first[:70]}"))
    Lab().reset()
    bare = floor(args.release, parts)
    Lab().reset()
    cells = sum(totals.values())
    demos = "without" if args.no_demos else "with"
    print(f"the guide, parts {args.parts}, Debian {args.release}, {demos} the optional demo: {wall:.1f} s wall, "
          f"{cells:.1f} s in cells")  # fmt: skip
    for name, seconds in totals.items():
        print(f"  {name:17} {seconds:7.1f} s  {seconds / cells:6.1%}")
    print(f"floor (one apt-get install of the same packages, services restarted once): {bare:.1f} s")
    print(f"  guide cells / floor: {cells / bare:.2f}x;  without the checks: {(cells - totals['checks']) / bare:.2f}x")
    print("the slowest cells:")
    for seconds, cell in sorted(slowest, reverse=True)[:SLOWEST]:
        print(f"  {seconds:6.1f} s  {cell}")


if __name__ == "__main__":
    main()
