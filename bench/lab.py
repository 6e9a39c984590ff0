"""Lab benchmark: base build (cold and cached), `lab up` to every host SSH-ready, memory per host.

Run as root:  .venv/bin/python bench/lab.py [--release trixie] [--runs 5] [--skip-cold]

The cold build goes to a temporary cache directory (it downloads from the Debian archive), so the
machine's own cache is left as it is. Takes the lab down first and leaves it down.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from mailkit.lab import rootfs
from mailkit.lab.lab import Lab
from mailkit.lab.layout import HOSTS

TARGET_UP_SECONDS = 3.0


def _quiet(_: str) -> None:
    pass


def time_build(release: str) -> float:
    start = time.monotonic()
    rootfs.ensure_base(release, _quiet)
    for role in {spec.layer for spec in HOSTS.values() if spec.layer}:
        rootfs.ensure_layer(release, role, _quiet)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", default="trixie")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-cold", action="store_true", help="skip the cold build (it downloads ~100 MB)")
    args = parser.parse_args()

    rows: list[tuple[str, str]] = []
    if not args.skip_cold:
        with tempfile.TemporaryDirectory(prefix="mailkit-bench-") as tmp:
            saved = os.environ.get("MAILKIT_CACHE_DIR")
            os.environ["MAILKIT_CACHE_DIR"] = tmp
            try:
                rows.append(("base + layers build, cold", f"{time_build(args.release):7.1f} s"))
            finally:
                if saved is None:
                    del os.environ["MAILKIT_CACHE_DIR"]
                else:
                    os.environ["MAILKIT_CACHE_DIR"] = saved
    time_build(args.release)  # make sure the real cache is warm
    rows.append(("base + layers build, cached", f"{time_build(args.release) * 1000:7.1f} ms"))

    lab = Lab()
    lab.down()
    ups, downs = [], []
    memory: dict[str, int] = {}
    for _ in range(args.runs):
        start = time.monotonic()
        lab.up(args.release)
        ups.append(time.monotonic() - start)
        from mailkit.lab.lab_target import lab_connection
        from mailkit.lab.machine import host_memory_kib

        for name in HOSTS:  # settle: every host fully booted before measuring memory
            with lab_connection(name) as conn:
                conn.run(["systemctl", "is-system-running", "--wait"], check=False)
        memory = {name: host_memory_kib(spec) for name, spec in HOSTS.items()}
        start = time.monotonic()
        lab.down()
        downs.append(time.monotonic() - start)
    up = statistics.median(ups)
    rows.append((f"lab up -> 3 hosts SSH-ready (median of {args.runs})", f"{up:7.2f} s"))
    rows.append(("  ratio to the 3 s target", f"{up / TARGET_UP_SECONDS:7.2f} x"))
    rows.append((f"lab down (median of {args.runs})", f"{statistics.median(downs):7.2f} s"))
    for name, kib in memory.items():
        rows.append((f"memory (PSS) of {name}", f"{kib / 1024:7.1f} MiB"))

    print(f"mailkit lab benchmark, release {args.release}, {os.cpu_count()} cores")
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:{width}}  {value}")


if __name__ == "__main__":
    if os.geteuid() != 0:
        raise SystemExit("bench/lab.py: run as root (the lab needs it)")
    main()
