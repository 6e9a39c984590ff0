"""How a class scales on this machine: time to bring up N student hosts and the memory each takes, side by side.

    .venv/bin/python bench/workshop.py [--students 1,10,30] [--with-guide]

For each N, on a running lab (brought up first if needed, from the cached images): the time of
``add_students(N)`` (boot, SSH answering, DNS records, logins), each student host's memory as proportional set
size (PSS, shared pages split among sharers) just after boot, what the machine's available memory dropped by,
the time of a class board (``mailkit check`` of every student from the outside host), and the time to remove them.
``--with-guide`` also brings student01 to the end of part 4 and measures that host (Postfix, Dovecot, rspamd,
Valkey): what a student's host weighs at the end of the workshop.

``--resets K [--reset-students N]`` times ``workshop reset --to-part K`` for N students (default 3), side by side:
the first reset of each (the guide builds part K on a fresh host, as the student would, and keeps it as that
student's snapshot), then a second round (each from their own snapshot, one after the other), then all of them at
once (``workshop reset student01 student02 ... --to-part K``: their hosts boot side by side), and the disk each
snapshot takes.
"""

from __future__ import annotations

import argparse
import statistics
import time

from mailkit.classroom.board import check_students
from mailkit.lab import machine
from mailkit.lab.lab import Lab
from mailkit.lab.layout import student_name, student_spec


def available_kib() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def settle(seconds: float = 3) -> None:
    time.sleep(seconds)  # let the hosts' systemd finish starting units before memory is read


def measure(lab: Lab, count: int) -> dict[str, float]:
    lab.remove_students()
    before = available_kib()
    start = time.monotonic()
    lab.add_students(count)
    up = time.monotonic() - start
    settle()
    pss = [machine.host_memory_kib(student_spec(n)) / 1024 for n in range(1, count + 1)]
    dropped = (before - available_kib()) / 1024
    start = time.monotonic()
    reports = check_students([student_name(n) for n in range(1, count + 1)])
    board = time.monotonic() - start
    assert all(r.rows for r in reports)
    start = time.monotonic()
    lab.remove_students()
    down = time.monotonic() - start
    return {
        "up": up,
        "pss_median": statistics.median(pss),
        "pss_max": max(pss),
        "dropped": dropped,
        "board": board,
        "down": down,
    }


def finished_student(lab: Lab) -> float:
    from pathlib import Path
    from tempfile import TemporaryDirectory

    from mailkit.classroom.workshop import reset_student

    lab.add_students(1)
    with TemporaryDirectory() as tmp:
        done = reset_student("student01", 4, Path(tmp))
    assert done.run is not None and done.ok, done
    settle()
    pss = machine.host_memory_kib(student_spec(1)) / 1024
    lab.remove_students()
    return pss


def resets(lab: Lab, part: int, count: int) -> None:
    """Each student reset to ``part`` twice: built by the guide (and kept), then from their own snapshot."""
    import subprocess
    from pathlib import Path
    from tempfile import TemporaryDirectory

    from mailkit.classroom.workshop import StudentReset, reset_student, reset_students
    from mailkit.lab import snapshots

    lab.remove_students()
    lab.add_students(count)
    names = [student_name(n) for n in range(1, count + 1)]
    built, booted = [], []
    with TemporaryDirectory() as tmp:
        for name in names:
            started = time.monotonic()
            done = reset_student(name, part, Path(tmp) / name)
            failed = [f"{c.name}: {c.detail}" for c in done.run.checks if not c.ok] if done.run else []
            assert done.run is not None and done.ok and done.kept, (done.run and done.run.error) or failed
            built.append(time.monotonic() - started)
        for name in names:
            started = time.monotonic()
            done = reset_student(name, part, Path(tmp) / name)
            assert done.run is None and done.booted_from, done
            booted.append(time.monotonic() - started)
        started = time.monotonic()
        together = reset_students(names, part, Path(tmp))
        at_once = time.monotonic() - started
        assert all(isinstance(d, StudentReset) and d.run is None and d.booted_from for d in together.values()), together
    print(f"workshop reset --to-part {part}, {count} students one after the other:")
    print(f"  built by the guide (and kept)  {sum(built):7.1f} s  ({statistics.median(built):5.1f} s per student)")
    print(f"  from their own snapshot        {sum(booted):7.1f} s  ({statistics.median(booted):5.1f} s per student)")
    print(f"  snapshot / guide               {statistics.median(booted) / statistics.median(built):7.3f}x")
    print(f"  all at once from their snapshots {at_once:5.1f} s  ({at_once / sum(booted):5.3f}x one after the other)")
    release = lab.status()["release"]
    for kept in snapshots.listing(lab.snapshot_store):
        if kept.host in names and kept.release == release:
            size = subprocess.run(["du", "-sh", str(kept.path)], capture_output=True, text=True).stdout.split()[0]
            print(f"  {kept.name}: {size}")
    lab.remove_students()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", default="1,10,30")
    parser.add_argument("--with-guide", action="store_true")
    parser.add_argument("--resets", type=int, choices=(1, 2, 3, 4), help="time resets to this part instead")
    parser.add_argument("--reset-students", type=int, default=3)
    args = parser.parse_args()
    counts = [int(n) for n in args.students.split(",")]
    lab = Lab()
    lab.up()
    if args.resets:
        resets(lab, args.resets, args.reset_students)
        return
    release = lab.status()["release"]
    results = {n: measure(lab, n) for n in counts}
    base = results[counts[0]]["up"]
    print(f"workshop on this machine, Debian {release} hosts, images cached, lab already up")
    print(f"{'students':>8} {'up s':>7} {'per student':>12} {'vs first':>9} {'PSS/host MiB':>13} {'max':>6} "
          f"{'RAM used MiB':>13} {'board s':>8} {'down s':>7}")  # fmt: skip
    for n, r in results.items():
        print(f"{n:8} {r['up']:7.1f} {r['up'] / n:12.2f} {r['up'] / base:8.1f}x {r['pss_median']:13.1f} "
              f"{r['pss_max']:6.1f} {r['dropped']:13.0f} {r['board']:8.1f} {r['down']:7.1f}")  # fmt: skip
    if args.with_guide:
        print(
            f"one student host at the end of part 4 (Postfix, Dovecot, rspamd, Valkey): {finished_student(lab):.1f} MiB"
        )


if __name__ == "__main__":
    main()
