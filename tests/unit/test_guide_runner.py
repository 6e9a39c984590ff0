"""The headless guide runner: a failed check or cell fails the run, and the checks are collected."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from mailkit.core.errors import UsageError
from mailkit.guide.chapters import Chapter
from mailkit.guide.runner import notebooks_for, run_guide

#: A guide of two demo chapters, as the registry would list them.
DEMO = (Chapter(1, "demo", "01-demo.ipynb"), Chapter(2, "next", "02-next.ipynb"))


def _notebook(path: Path, *sources: str) -> None:
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


CHECK = "from mailkit.core.checks import CheckResult, report\nreport([CheckResult('demo', 'a check', {ok})])"


def test_passing_checks_are_collected_and_the_notebook_saved(tmp_path: Path) -> None:
    _notebook(tmp_path / "01-demo.ipynb", CHECK.format(ok=True), "print('done')")
    run = run_guide([1], tmp_path / "out", notebook_dir=tmp_path, chapters=DEMO)
    assert run.ok and run.error is None
    assert [(c.name, c.ok) for c in run.checks] == [("a check", True)]
    saved = nbformat.read(tmp_path / "out" / "01-demo.ipynb", as_version=4)
    assert saved.cells[1].outputs[0]["text"] == "done\n"


def test_a_failed_check_fails_the_run_and_stops_it(tmp_path: Path) -> None:
    _notebook(tmp_path / "01-demo.ipynb", CHECK.format(ok=False), "print('not reached')")
    _notebook(tmp_path / "02-next.ipynb", "print('not run')")
    run = run_guide([1, 2], tmp_path / "out", notebook_dir=tmp_path, chapters=DEMO)
    assert not run.ok
    assert "ChecksFailed" in (run.error or "")
    assert [(c.name, c.ok) for c in run.checks] == [("a check", False)]
    assert [p.name for p in run.executed] == ["01-demo.ipynb"]


def test_unknown_part_is_a_usage_error(tmp_path: Path) -> None:
    _notebook(tmp_path / "01-demo.ipynb", "1")
    with pytest.raises(UsageError, match="no notebook for part 7"):
        notebooks_for([7], tmp_path, DEMO)
    with pytest.raises(UsageError, match=r"02-next\.ipynb is missing"):
        notebooks_for([2], tmp_path, DEMO)


def test_a_notebook_the_registry_does_not_name_is_never_run(tmp_path: Path) -> None:
    """A stray ``05-*.ipynb`` beside the chapters is not part 5: only the registry says which file a number is."""
    _notebook(tmp_path / "01-demo.ipynb", "1")
    _notebook(tmp_path / "01-demo-copy.ipynb", "1")
    _notebook(tmp_path / "05-stray.ipynb", "1")
    assert [p.name for p in notebooks_for([1], tmp_path, DEMO)] == ["01-demo.ipynb"]
    with pytest.raises(UsageError, match="no notebook for part 5"):
        notebooks_for([5], tmp_path, DEMO)
