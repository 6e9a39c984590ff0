"""Running the guide headless: execute the notebooks in order against the lab, collect their checks.

>>> [p.name for p in notebooks_for([1])]
['01-postfix.ipynb']
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailkit.core.checks import RESULTS_FILE_ENV, CheckResult, load_results
from mailkit.core.errors import UsageError
from mailkit.guide.chapters import CHAPTERS, Chapter

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"


def notebooks_for(
    parts: Sequence[int], directory: Path = NOTEBOOK_DIR, chapters: Sequence[Chapter] = CHAPTERS
) -> list[Path]:
    """The notebooks of the given chapters, in the guide's order, as the registry of chapters names them."""
    by_number = {c.number: c for c in chapters}
    found = []
    for part in sorted(set(parts)):
        if part not in by_number:
            available = ", ".join(f"{c.number} ({c.notebook})" for c in chapters)
            raise UsageError(f"no notebook for part {part} (there are: {available})")
        path = directory / by_number[part].notebook
        if not path.is_file():
            raise UsageError(f"{path} is missing: the guide's chapter {part} is that notebook")
        found.append(path)
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
    chapters: Sequence[Chapter] = CHAPTERS,
    record_timing: bool = False,
    parameters: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> GuideRun:
    """Execute the notebooks of ``parts`` in order (stopping at the first failure); save them to ``output``.

    ``parameters`` (validated by :mod:`mailkit.guide.params`) go into each notebook after its ``parameters`` cell;
    ``environ`` is set for the kernels (a passwords file, the outside host).
    """
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    output.mkdir(parents=True, exist_ok=True)
    run = GuideRun([], [], {})
    with tempfile.TemporaryDirectory(prefix="mailkit-guide-") as tmp:
        results_file = Path(tmp) / "checks.jsonl"
        results_file.touch()
        settings = {**(environ or {}), "MAILKIT_HOST": target, RESULTS_FILE_ENV: str(results_file)}
        saved = {k: os.environ.get(k) for k in settings}
        os.environ.update(settings)
        try:
            for path in notebooks_for(parts, notebook_dir, chapters):
                progress(f"running {path.name}")
                notebook = nbformat.read(path, as_version=4)
                if parameters:
                    notebook = inject_parameters(notebook, dict(parameters), "this server")
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


def inject_parameters(notebook: Any, parameters: dict[str, Any], title: str = "this student") -> Any:
    """Put an ``injected-parameters`` cell after the ``parameters`` cell (papermill's convention), setting only the
    parameters that notebook has."""
    import nbformat

    cells = notebook.cells
    index = next((i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])), None)
    if index is None:
        raise UsageError("the notebook has no cell tagged 'parameters'")
    source = cells[index].source
    lines = [f"# Parameters of {title} (written by mailkit)"]
    lines += [f"{name} = {value!r}" for name, value in parameters.items() if f"\n{name} = " in "\n" + source]
    cell = nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": ["injected-parameters"]})
    cell["id"] = "injected-parameters"  # deterministic: the same notebook for the same student every time
    notebook.cells = [*cells[: index + 1], cell, *cells[index + 1 :]]
    return notebook
