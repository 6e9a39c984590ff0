"""The test suite on several Debian releases side by side: one pytest per release, each with a lab of its own.

The first release runs here, in lab 0 (the guide's lab), with `mailkit matrix`'s own test and the browser test
that needs a lab (JupyterLab). Every other release runs its lab tests
in a lab instance counted down from 9 (`mailkit matrix` counts up from 1, so the two never meet), inside a network
namespace of its own, its apt proxy relayed to one of its own on loopback: the way :mod:`mailkit.matrix.releases`
runs its labs.
On two cores the releases' halves overlap their waits (boots, restarts, apt), which is most of their time.
The first release's longest module, provider mode (a rented server built by the guide from nothing, about seven
minutes, on that release only), runs in a lab of its own beside it (:data:`OWN_LAB_TESTS`), the next instance down,
with the tests that need no lab (unit tests, doctests, the book's and the board's pages: lint is the caller's), run
once there: that lane is the shortest by far (ci65: provider mode 7 min 8 s beside halves of 25 and 28 minutes).

    python -m mailkit.matrix.suite trixie,bookworm -- --durations=60

>>> [(r.name, r.instance, r.namespace, r.once) for r in plan(["trixie", "bookworm"])]
[('trixie', 0, None, False), ('bookworm', 9, 'mksuite9', False), ('trixie provider mode', 8, 'mksuite8', True)]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mailkit.core.errors import UsageError
from mailkit.lab import netns, proxy
from mailkit.lab.lab import check_release
from mailkit.lab.layout import PROXY_PORT
from mailkit.matrix.releases import build_images, stop_proxy

#: The suite's own apt proxy for its other labs: not the matrix's (3143), whose test runs meanwhile.
SUITE_PROXY_PORT = 3144
SUITE_STATE = Path("/var/lib/mailkit/suite")
#: The lab test directories.
LAB_TESTS = ("tests/lab", "tests/reliability", "tests/upgrade")
#: Runs `mailkit matrix` on every release itself: once, in the first release's run.
MATRIX_TEST = "tests/lab/test_70_matrix.py"
#: What needs no lab: run once, in the lane of :data:`OWN_LAB_TESTS`.
ONCE_TESTS = (
    "tests/unit",
    "mailkit",
    "tests/browser/test_book_pages.py",
    "tests/browser/test_board_and_report_pages.py",
)
#: The first release's modules that run in a lab of their own beside its other tests: name -> paths.
OWN_LAB_TESTS = {"provider mode": ("tests/lab/test_90_provider.py",)}
#: pytest's exit code when nothing was selected: a ``-k`` that names no test of one lane has not failed there.
NOTHING_SELECTED = 5


@dataclass(frozen=True)
class Run:
    """One release's pytest: its lab instance, and its network namespace (None: this machine's own)."""

    release: str
    instance: int
    namespace: str | None
    #: This run (one of :data:`OWN_LAB_TESTS`'s) has the tests that need no lab too (:data:`ONCE_TESTS`).
    once: bool = False
    #: Only these test paths, under this name (:data:`OWN_LAB_TESTS`); empty: the release's lab tests.
    only: tuple[str, ...] = ()
    label: str = ""

    @property
    def name(self) -> str:
        return f"{self.release} {self.label}" if self.label else self.release

    def env(self, releases: Sequence[str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("MAILKIT_LAB_INSTANCE", "MAILKIT_NETNS")}
        env.update(MAILKIT_TEST_RELEASES=self.release, MAILKIT_SUITE_RELEASES=",".join(releases))
        if self.namespace is not None:
            env.update(
                MAILKIT_LAB_INSTANCE=str(self.instance), MAILKIT_LAB_PROXY="external", MAILKIT_NETNS=self.namespace
            )
        return env

    def argv(self, pytest_args: Sequence[str]) -> list[str]:
        base = [sys.executable, "-m", "pytest", *pytest_args]
        if self.only:
            return [*base, *self.only, *(ONCE_TESTS if self.once else ())]
        own_lab = [f"--ignore={path}" for paths in OWN_LAB_TESTS.values() for path in paths]
        if self.namespace is None:  # the first release: every test path but those run elsewhere
            return [*base, *own_lab, *(f"--ignore={path}" for path in ONCE_TESTS)]
        return [*base, f"--ignore={MATRIX_TEST}", *own_lab, *LAB_TESTS]


def plan(releases: Sequence[str]) -> list[Run]:
    """The first release in lab 0 here; the others in labs 9, 8, ... in namespaces ``mksuite9``, ..."""
    if not releases:
        raise UsageError("name at least one release")
    if len(set(releases)) != len(releases) or len(releases) > 4:
        # Four, so that the labs counted down from 9 (with the own-lab lanes) never meet the matrix's 1, 2, 3, 4.
        raise UsageError(f"releases: each at most once, at most four: {','.join(releases)}")
    runs = [Run(check_release(releases[0]), 0, None)]
    for i, release in enumerate(releases[1:]):
        instance = 9 - i
        runs.append(Run(check_release(release), instance, f"mksuite{instance}"))
    for i, (label, paths) in enumerate(OWN_LAB_TESTS.items()):
        instance = 9 - (len(runs) - 1)
        runs.append(Run(runs[0].release, instance, f"mksuite{instance}", once=i == 0, only=paths, label=label))
    return runs


def run_suite(releases: Sequence[str], pytest_args: Sequence[str], logs: Path) -> int:
    """Run every release's half at once; the first prints as it goes, the others' logs follow; the worst exit code."""
    runs = plan(releases)
    first, others = runs[0], runs[1:]
    codes: dict[str, int] = {}
    relays: list[netns.ProxyRelay] = []
    proxy_pid = None
    logs.mkdir(parents=True, exist_ok=True)
    here = subprocess.Popen(first.argv(pytest_args), env=first.env(releases))
    threads: list[threading.Thread] = []
    try:
        if others:
            wanted = sorted({r.release for r in others})
            build_images(wanted, len(wanted), lambda line: print(line, flush=True))
            proxy_pid = proxy.start(SUITE_STATE, "127.0.0.1", SUITE_PROXY_PORT, "apt-cacher-ng-suite")
            for other in others:
                assert other.namespace is not None
                netns.create(other.namespace)
                relay = netns.ProxyRelay(other.namespace, PROXY_PORT, ("127.0.0.1", SUITE_PROXY_PORT))
                relay.start()
                relays.append(relay)

        def one(run: Run) -> None:
            with open(logs / f"{run.release}-lab{run.instance}.log", "w") as out:
                codes[run.name] = subprocess.run(
                    run.argv(pytest_args), env=run.env(releases), stdout=out, stderr=subprocess.STDOUT, check=False
                ).returncode

        threads = [threading.Thread(target=one, args=(run,)) for run in others]
        for thread in threads:
            thread.start()
        codes[first.name] = here.wait()
        for thread in threads:
            thread.join()
    finally:
        if here.poll() is None:
            here.terminate()
            here.wait()
        for relay in relays:
            relay.stop()
        if proxy_pid is not None:
            stop_proxy(proxy_pid)
        for other in others:
            if other.namespace is not None:
                netns.delete(other.namespace)
    for other in others:
        print(f"\n==> {other.name}: lab tests in lab {other.instance} (exit {codes.get(other.name)})", flush=True)
        print((logs / f"{other.release}-lab{other.instance}.log").read_text(errors="replace"), flush=True)
    print("==> exit codes: " + ", ".join(f"{r}: {c}" for r, c in codes.items()), flush=True)
    return worst(list(codes.values()))


def worst(codes: Sequence[int]) -> int:
    """The suite's exit code from its lanes': the worst, where a lane with nothing selected has not failed unless
    no lane had anything.

    >>> worst([0, 5, 0]), worst([5, 5]), worst([1, 5]), worst([])
    (0, 5, 1, 1)
    """
    if not codes:
        return 1
    ran = [c for c in codes if c != NOTHING_SELECTED]
    return max(ran) if ran else NOTHING_SELECTED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mailkit.matrix.suite", description=__doc__.splitlines()[0])
    parser.add_argument("releases", help="comma-separated; the first's lab also runs the matrix's test")
    parser.add_argument("--logs", type=Path, default=SUITE_STATE / "logs")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to every pytest")
    opts = parser.parse_args(argv)
    return run_suite([r for r in opts.releases.split(",") if r], opts.pytest_args, opts.logs)


if __name__ == "__main__":
    sys.exit(main())
