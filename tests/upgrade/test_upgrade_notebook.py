"""The upgrade notebook (05) replayed with nbval on a bookworm lab: the finished bookworm server (parts 1 to 4, from
the part 4 snapshot) upgraded to trixie.

It runs last for the bookworm lab (this directory sorts after tests/lab and tests/reliability): afterwards the
mail host runs trixie. On the other releases there is nothing to upgrade from, and the test says so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailkit.lab.lab import Lab

pytestmark = pytest.mark.lab

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "05-upgrade.ipynb"


def test_bookworm_server_upgrades_to_trixie_keeping_every_promise(lab: Lab) -> None:
    release = lab.status()["release"]
    if release != "bookworm":
        pytest.skip(f"the upgrade starts from bookworm; this lab runs {release}")
    lab.reset(to_part=4)  # the finished bookworm server, as a reader comes to the upgrade (from its snapshot)
    argv = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--nbval",
        "--nbval-sanitize-with", str(NOTEBOOK.parent / "sanitize.cfg"), "--nbval-cell-timeout", "2400", str(NOTEBOOK),
    ]  # fmt: skip
    env = dict(os.environ, MAILKIT_HOST="lab:mail", MAILKIT_STATIC_OUTPUT="1")
    env.pop("MAILKIT_CHECKS_FILE", None)
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=NOTEBOOK.parent, check=False)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
    with_trixie = lab.status()
    assert with_trixie["state"] == "up"
    from mailkit.lab.lab_target import lab_connection

    with lab_connection("mail") as mail:
        assert "trixie" in mail.run(["cat", "/etc/os-release"]).stdout
    lab.reset()  # later tests on this lab get the bookworm server they expect
