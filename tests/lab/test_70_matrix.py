"""`mailkit matrix` for real, in its cheap configuration: part 1 on the test releases, side by side.

The full matrix (bookworm, trixie and sid, parts 1-4) is a documented command (README, bench/matrix.py).
The matrix runs labs 1, 2... in namespaces of their own: the guide's lab (0), up or not, is left as it was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailkit.lab import netns
from mailkit.lab.lab import Lab

pytestmark = pytest.mark.lab

#: Every release of the suite, also when this process runs one release's half (``./run tests``: side by side).
RELEASES = [
    r
    for r in (
        os.environ.get("MAILKIT_SUITE_RELEASES") or os.environ.get("MAILKIT_TEST_RELEASES", "trixie,bookworm")
    ).split(",")
    if r
]
#: The matrix's labs are instances 1, 2, ...: the suite's other release meanwhile runs in instance 9.
MATRIX_NAMES = tuple(f"mailkit{i}-" for i in range(1, len(RELEASES) + 1))


def _matrix_leftovers() -> list[str]:
    """Namespaces and processes of the matrix's labs still on the machine."""
    netns_dir = Path("/run/netns")
    found = (
        [f"netns {p.name}" for p in netns_dir.iterdir() if p.name.startswith(MATRIX_NAMES)]
        if netns_dir.is_dir()
        else []
    )
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(name in cmdline for name in MATRIX_NAMES) or "/var/lib/mailkit/matrix/" in cmdline:
            found.append(f"process {proc.name}: {cmdline[:120]}")
    return found


def test_matrix_runs_part_1_on_each_release_side_by_side(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    before = Lab().status()
    result = subprocess.run(
        [sys.executable, "-m", "mailkit.cli", "matrix", "--releases", ",".join(RELEASES), "--parts", "1",
         "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] and report["releases"] == RELEASES
    for release in RELEASES:
        checks = report["checks"][release]
        assert len(checks) >= 20 and all(c["ok"] for c in checks.values()), release
        assert "part 1 / route / MX of example.org" in checks
        assert report["results"][release]["versions"]["postfix"], "versions read from each release's mail host"
        assert (tmp_path / release / "notebooks" / "01-postfix.ipynb").exists()
    if len(RELEASES) > 1:
        postfix = {report["results"][r]["versions"]["postfix"] for r in RELEASES}
        assert len(postfix) == len(RELEASES), "each lab ran its own release"
        assert "main.cf (postconf -n)" in report["file_diffs"]
    assert "## Checks" in (tmp_path / "report.md").read_text()
    assert "<table>" in (tmp_path / "report.html").read_text()
    assert netns.runner_namespaces() == [], "the matrix removes its namespaces"
    assert _matrix_leftovers() == [], "no matrix lab, proxy or namespace left behind"
    assert Lab().status() == before, "the guide's own lab is left as it was"
