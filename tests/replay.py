"""nbval replays notebooks against the lab's mail host and compares their stored outputs (sanitized as
``notebooks/sanitize.cfg`` says): the one way every notebook test runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def replay(notebooks: Sequence[Path], cell_timeout: int = 900) -> str:
    """Run ``notebooks`` under nbval in a pytest of their own (a kernel each, as a reader's Jupyter would);
    assert they pass; return nbval's report."""
    argv = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--nbval",
        "--nbval-sanitize-with", str(NOTEBOOKS / "sanitize.cfg"), "--nbval-cell-timeout", str(cell_timeout),
        *map(str, notebooks),
    ]  # fmt: skip
    env = dict(os.environ, MAILKIT_HOST="lab:mail", MAILKIT_STATIC_OUTPUT="1")
    env.pop("MAILKIT_CHECKS_FILE", None)
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=NOTEBOOKS, check=False)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
    return result.stdout
