"""The release matrix in parallel, against the slowest release alone and the releases one after the other.

Run as root:  .venv/bin/python bench/matrix.py [--releases bookworm,trixie,sid] [--parts 1,2,3,4]

Three runs of `mailkit matrix` in this one process, each from the same cached images and apt cache:
1. all releases side by side (--jobs = number of releases): the matrix's wall time;
2. the same releases one after the other (--jobs 1): the sum a maintainer pays today;
3. the release that was slowest in run 1, alone: the floor a parallel run cannot beat.
Printed side by side, with ratios; the goal is parallel <= 1.5 x the slowest release alone on this machine.
Each run's per-release seconds (lab up, the guide, the lab down) are printed too, so where the time goes shows.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from mailkit.guide.chapters import DEFAULT_PARTS
from mailkit.matrix.releases import run_matrix


def timed(releases: list[str], parts: list[int], jobs: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="mailkit-bench-matrix-") as out:
        report = run_matrix(releases, parts, Path(out), jobs=jobs)
    if not report["ok"]:
        raise SystemExit(f"the matrix failed: {report['summary']}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--releases", default="bookworm,trixie,sid")
    parser.add_argument("--parts", default=DEFAULT_PARTS)
    args = parser.parse_args()
    releases = [r for r in args.releases.split(",") if r]
    parts = [int(p) for p in args.parts.split(",") if p]
    timed(releases, parts[:1], len(releases))  # warm: images and the matrix's apt cache, not measured
    parallel = timed(releases, parts, len(releases))
    sequential = timed(releases, parts, 1)
    slowest = max(releases, key=lambda r: parallel["results"][r]["seconds"])
    alone = timed([slowest], parts, 1)
    print(f"mailkit matrix, parts {args.parts}, {len(releases)} releases, on this machine")
    print(f"  {'run':40} {'wall':>8} {'ratio to alone':>15}")
    base = alone["wall_seconds"]
    for label, report in (
        (f"{slowest} alone (the floor)", alone),
        (f"all {len(releases)} side by side (--jobs {len(releases)})", parallel),
        ("one after the other (--jobs 1)", sequential),
    ):
        print(f"  {label:40} {report['wall_seconds']:7.1f}s {report['wall_seconds'] / base:14.2f}x")
    for label, report in (("side by side", parallel), ("one after the other", sequential)):
        per = ", ".join(f"{r} {report['results'][r]['seconds']:.0f} s" for r in releases)
        print(f"  per release, {label}: {per}")
    goal = parallel["wall_seconds"] <= 1.5 * base
    print(f"  goal: parallel <= 1.5 x alone: {'met' if goal else 'not met'}")


if __name__ == "__main__":
    main()
