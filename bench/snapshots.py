"""What part snapshots save: a mail host at the end of part K from its snapshot, against the same host built by the
guide on a fresh one, side by side in one run, and the snapshots' disk use.

Run as root on a lab that is up (``mailkit lab up [--release R]``):
    .venv/bin/python bench/snapshots.py [--part 2] [--runs 3]

Each run alternates the two ways (so drift in the machine's load falls on both): ``Lab.reset(to_part=K)`` from the
snapshot (made first if it is not there), and ``Lab.reset()`` followed by the guide's parts 1..K
(``run_guide``, as ``mailkit guide run`` does). Both end with a host that passes the same checks (test_25 and
test_30 prove it). Prints the medians, their ratio, and ``du`` of each snapshot of the running release.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from mailkit.guide.runner import run_guide
from mailkit.lab import snapshots
from mailkit.lab.lab import Lab


def from_snapshot(lab: Lab, part: int) -> float:
    started = time.monotonic()
    done = lab.reset(to_part=part)
    assert "from snapshot" in done, done
    return time.monotonic() - started


def by_the_guide(lab: Lab, part: int) -> float:
    started = time.monotonic()
    lab.reset()
    with tempfile.TemporaryDirectory(prefix="bench-snapshots-") as tmp:
        run = run_guide(list(range(1, part + 1)), Path(tmp), target="lab:mail")
    assert run.ok, run.error
    return time.monotonic() - started


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--part", type=int, default=2, choices=snapshots.PARTS, help="the part to reach (default 2)")
    args.add_argument("--runs", type=int, default=3, help="runs of each way (default 3)")
    options = args.parse_args()
    lab = Lab()
    release = lab.require_up()["release"]
    print(f"making sure the part {options.part} snapshot exists: {lab.reset(to_part=options.part)}")
    times: dict[str, list[float]] = {"snapshot": [], "guide": []}
    for _ in range(options.runs):
        times["snapshot"].append(from_snapshot(lab, options.part))
        times["guide"].append(by_the_guide(lab, options.part))
    snap, guide = statistics.median(times["snapshot"]), statistics.median(times["guide"])
    print(f"{release}, a mail host at the end of part {options.part}, median of {options.runs}:")
    print(f"  from its snapshot        {snap:7.1f} s")
    print(f"  built by the guide       {guide:7.1f} s")
    print(f"  snapshot / guide         {snap / guide:7.3f}x")
    for kept in snapshots.listing(lab.snapshot_store):
        if kept.release == release:
            size = subprocess.run(["du", "-sh", str(kept.path)], capture_output=True, text=True).stdout.split()[0]
            print(f"  {kept.name}: part {kept.part}, {size}")
    lab.reset()


if __name__ == "__main__":
    main()
