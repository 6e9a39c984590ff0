"""Running commands on this machine (the one that hosts the lab), argv lists only, never a shell.

>>> run_local(["true"]).ok
True
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

from mailkit.core.errors import CommandError
from mailkit.core.result import Result


def run_local(
    argv: Sequence[str],
    *,
    check: bool = True,
    input: str | None = None,
    timeout: float | None = 600,
    env: dict[str, str] | None = None,
) -> Result:
    """Run ``argv`` here; raise :class:`CommandError` on failure unless ``check`` is false."""
    proc = subprocess.run(
        list(argv), input=input, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    result = Result(shlex.join(argv), proc.stdout, proc.stderr, proc.returncode)
    if check and result.failed:
        raise CommandError(result)
    return result


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file on this machine, readable by its owner only from the first byte (mode 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
