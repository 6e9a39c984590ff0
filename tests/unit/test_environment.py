"""pip (pyproject.toml) and conda (environment.yml) describe the same environment."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONDA_ONLY = {"python", "pip"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pip_packages() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [req for reqs in project.get("optional-dependencies", {}).values() for req in reqs]
    return {_name(req) for req in [*project["dependencies"], *extras]}


def _conda_packages() -> set[str]:
    names = set()
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("\ndependencies:\n", 1)[1].splitlines():
        match = re.match(r"^  - ([A-Za-z0-9_.-]+)", line)
        if match:
            names.add(_name(match.group(1)))
    return names - CONDA_ONLY


def test_pip_and_conda_list_the_same_packages() -> None:
    pip, conda = _pip_packages(), _conda_packages()
    assert pip, "no dependencies found in pyproject.toml"
    assert pip == conda, f"only in pyproject: {sorted(pip - conda)}; only in environment.yml: {sorted(conda - pip)}"


def test_environment_installs_mailkit_itself() -> None:
    assert "- -e ." in (ROOT / "environment.yml").read_text()
