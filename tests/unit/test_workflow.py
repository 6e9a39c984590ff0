"""The CI workflow file is valid against the published GitHub Actions workflow schema (vendored by check-jsonschema,
so the check runs offline) and runs the matrix once per release."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "matrix.yml"


def test_workflow_is_valid_for_github_actions() -> None:
    tool = shutil.which("check-jsonschema") or str(Path(__file__).resolve().parents[2] / ".venv/bin/check-jsonschema")
    if not Path(tool).exists():
        pytest.fail("check-jsonschema is missing: it is in the dev extra ('pip install -e .[dev]')")
    result = subprocess.run(
        [tool, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_one_job_per_release_runs_mailkit_matrix_and_keeps_the_report() -> None:
    flow = yaml.safe_load(WORKFLOW.read_text())
    job = flow["jobs"]["guide"]
    assert job["strategy"]["matrix"]["release"] == ["bookworm", "trixie", "sid"]
    assert job["strategy"]["fail-fast"] is False, "one release failing must not hide the others"
    steps = " ".join(str(step.get("run", "")) for step in job["steps"])
    assert "mailkit matrix" in steps and '--releases "$RELEASE"' in steps
    upload = next(step for step in job["steps"] if str(step.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and "report" in upload["with"]["path"]


def test_deliberately_broken_workflow_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:"))
    tool = shutil.which("check-jsonschema") or str(Path(__file__).resolve().parents[2] / ".venv/bin/check-jsonschema")
    result = subprocess.run([tool, "--builtin-schema", "vendor.github-workflows", str(broken)], capture_output=True)
    assert result.returncode != 0, "the schema check must catch a misspelt key"


def test_no_expression_is_pasted_into_a_script() -> None:
    """Security review, finding 11: workflow inputs go through the environment, and the parts are checked."""
    import re

    flow = yaml.safe_load(WORKFLOW.read_text())
    for step in flow["jobs"]["guide"]["steps"]:
        assert "${{" not in str(step.get("run", "")), step
    run = next(step for step in flow["jobs"]["guide"]["steps"] if "mailkit matrix" in str(step.get("run", "")))
    assert run["env"]["PARTS"].startswith("${{ github.event.inputs.parts")
    check = re.search(r'\[\[ "\$PARTS" =~ (\S+) \]\]', run["run"])
    assert check, run["run"]
    bash = shutil.which("bash") or "/bin/bash"
    for parts, ok in (("1,2,3,4", True), ("2", True), ('1"; id; "', False), ("1,2 --output /etc", False), ("", False)):
        done = subprocess.run([bash, "-c", f'[[ "$PARTS" =~ {check[1]} ]]'], env={"PARTS": parts}, check=False)
        assert (done.returncode == 0) == ok, parts
