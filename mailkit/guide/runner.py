"""Running the guide headless: execute the notebooks in order against the lab, collect their checks.

>>> [p.name for p in notebooks_for([1])]
['01-postfix.ipynb']
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailkit.checks import RESULTS_FILE_ENV, CheckResult, load_results
from mailkit.errors import UsageError

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"


def notebooks_for(parts: Sequence[int], directory: Path = NOTEBOOK_DIR) -> list[Path]:
    """The notebooks of the given parts, in the guide's order."""
    found = []
    for part in sorted(set(parts)):
        matches = sorted(directory.glob(f"{part:02}-*.ipynb"))
        if not matches:
            available = ", ".join(sorted(p.name for p in directory.glob("[0-9][0-9]-*.ipynb")))
            raise UsageError(f"no notebook for part {part} (there are: {available})")
        found.append(matches[0])
    return found


@dataclass
class GuideRun:
    """What a run did: the executed notebooks, their checks, the first error if any, and timings."""

    executed: list[Path]
    checks: list[CheckResult]
    seconds: dict[str, float]
    error: str | None = None
    #: The checks each notebook ran (a later part re-checks earlier ones: they count where they ran).
    checks_by_notebook: dict[str, list[CheckResult]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and all(c.ok for c in self.checks)


def run_guide(
    parts: Sequence[int],
    output: Path,
    *,
    target: str = "lab:mail",
    progress: Callable[[str], None] = lambda _: None,
    cell_timeout: int = 900,
    notebook_dir: Path = NOTEBOOK_DIR,
    record_timing: bool = False,
) -> GuideRun:
    """Execute the notebooks of ``parts`` in order (stopping at the first failure); save them to ``output``."""
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    output.mkdir(parents=True, exist_ok=True)
    run = GuideRun([], [], {})
    with tempfile.TemporaryDirectory(prefix="mailkit-guide-") as tmp:
        results_file = Path(tmp) / "checks.jsonl"
        results_file.touch()
        saved = {k: os.environ.get(k) for k in ("MAILKIT_HOST", RESULTS_FILE_ENV)}
        os.environ.update({"MAILKIT_HOST": target, RESULTS_FILE_ENV: str(results_file)})
        try:
            for path in notebooks_for(parts, notebook_dir):
                progress(f"running {path.name}")
                notebook = nbformat.read(path, as_version=4)
                # The kernel talks over Unix sockets in the private temporary directory, not TCP: no port
                # on this machine for other users to reach, and no warning about it from the kernel.
                km = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(tmp) / "kernel"))
                client = NotebookClient(
                    notebook,
                    km=km,
                    timeout=cell_timeout,
                    kernel_name="python3",
                    record_timing=record_timing,
                    resources={"metadata": {"path": str(path.parent)}},
                )
                start = time.monotonic()
                try:
                    client.execute()
                except CellExecutionError as exc:
                    run.error = f"{path.name}: {_first_lines(str(exc))}"
                finally:
                    if km.has_kernel:
                        km.shutdown_kernel(now=False)
                    km.cleanup_resources()
                    run.seconds[path.name] = time.monotonic() - start
                    nbformat.write(numbered(notebook), output / path.name)
                    run.executed.append(output / path.name)
                    so_far = load_results(str(results_file))
                    run.checks_by_notebook[path.name] = so_far[sum(map(len, run.checks_by_notebook.values())) :]
                if run.error:
                    break
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        run.checks = load_results(str(results_file))
    return run


def numbered(notebook: Any) -> Any:
    """The notebook with its execution counts 1, 2, 3... in cell order: the same after every run.

    (nbval needs a count on every cell with outputs; a kernel that ran a cell twice would leave gaps.)

    >>> import nbformat.v4 as v4
    >>> nb = v4.new_notebook(cells=[v4.new_code_cell("1", execution_count=7), v4.new_code_cell("2")])
    >>> [c.execution_count for c in numbered(nb).cells]
    [1, 2]
    """
    count = 0
    for cell in notebook.cells:
        if cell.cell_type == "code":
            count += 1
            cell.execution_count = count
            for output in cell.get("outputs", []):
                if "execution_count" in output:
                    output["execution_count"] = count
    return notebook


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _first_lines(text: str, limit: int = 25) -> str:
    """The last ``limit`` lines of a cell's error, without the terminal colours IPython puts in tracebacks."""
    lines = [line for line in _ANSI.sub("", text).splitlines() if line.strip()]
    return "\n".join(lines[-limit:])


def prepare_lab(release: str, keep: bool, progress: Callable[[str], None]) -> None:
    """The lab on ``release`` with a fresh mail host (or the mail host as it is, with ``keep``)."""
    from mailkit.lab.lab import Lab

    lab = Lab()
    status = lab.status()
    if status["state"] == "up" and status["release"] != release:
        if keep:
            raise UsageError(f"--keep: the lab runs {status['release']}, not {release}")
        progress(f"taking down the {status['release']} lab")
        lab.down()
    started = lab.up(release, progress=progress)
    if not started and not keep:
        progress("resetting the mail host")
        lab.reset(progress=progress)
    if started and keep:
        progress("the lab was down: --keep starts from a fresh mail host")
