"""nbval re-executes every notebook against a fresh mail host and compares its stored outputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailkit.guide.chapters import CHAPTERS
from mailkit.lab.lab import Lab

pytestmark = pytest.mark.lab

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def test_guide_notebooks_replay_with_their_stored_outputs(lab: Lab) -> None:
    lab.reset()  # the guide starts from the server as a provider hands it over
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "--nbval",
        "--nbval-sanitize-with",
        str(NOTEBOOKS / "sanitize.cfg"),
        "--nbval-cell-timeout",
        "900",
        *(str(NOTEBOOKS / c.notebook) for c in CHAPTERS if c.server_part),  # 05 upgrades bookworm: tests/upgrade
    ]
    env = dict(os.environ, MAILKIT_HOST="lab:mail", MAILKIT_STATIC_OUTPUT="1")
    env.pop("MAILKIT_CHECKS_FILE", None)
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=NOTEBOOKS, check=False)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
