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
        match = re.match(r"^  - ([A-Za-z0-9_.-]+)", line) or re.match(r"^      - ([A-Za-z0-9_.-]+)==", line)
        if match:
            names.add(_name(match.group(1)))
    return names - CONDA_ONLY


def test_pip_and_conda_list_the_same_packages() -> None:
    pip, conda = _pip_packages(), _conda_packages()
    assert pip, "no dependencies found in pyproject.toml"
    assert pip == conda, f"only in pyproject: {sorted(pip - conda)}; only in environment.yml: {sorted(conda - pip)}"


def test_environment_installs_mailkit_itself() -> None:
    assert "- -e ." in (ROOT / "environment.yml").read_text()


def _imports(paths: list[Path]) -> dict[str, set[str]]:
    """The top-level modules each file imports (``import x.y`` and ``from x.y import z`` give ``x``)."""
    import ast

    found: dict[str, set[str]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_third_party_module_mailkit_imports_is_declared() -> None:
    """Issue 21: what the package imports comes from a package that pyproject.toml (and so environment.yml)
    declares, not from whatever another package happened to pull in."""
    import importlib.metadata
    import sys

    imported = _imports(sorted((ROOT / "mailkit").rglob("*.py")))
    third_party = {m: files for m, files in imported.items() if m not in sys.stdlib_module_names and m != "mailkit"}
    distributions = importlib.metadata.packages_distributions()
    declared = _pip_packages()
    missing = {
        module: sorted(files)[:3]
        for module, files in third_party.items()
        if not {_name(d) for d in distributions.get(module, [module])} & declared
    }
    assert third_party, "the package imports third-party modules: the scan found none"
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_programs_for_other_hosts_need_python_alone() -> None:
    """The programs in mailkit/remote run on hosts that have python3 and nothing else: the standard library only."""
    import sys

    imported = _imports(sorted((ROOT / "mailkit" / "remote").glob("*.py")))
    assert {m for m in imported if m not in sys.stdlib_module_names} <= {"mailkit"}, imported
    uses_mailkit = {f for m, files in imported.items() if m == "mailkit" for f in files}
    assert uses_mailkit <= {"mailkit/remote/__init__.py"}, f"a remote program imports mailkit: {uses_mailkit}"
