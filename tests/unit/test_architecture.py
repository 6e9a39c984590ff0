"""The package's shape, measured from its imports (deferred ones and those only for type checking included).

The layers, bottom up: ``remote`` (programs for other hosts, standard library only), ``core`` (values, facts,
resources, transaction, engine, SSH), ``domain`` (DNS records), ``server`` (the target, its certificate and
mailboxes), ``clients`` (real clients from another host), ``guide``, ``status`` (``mailkit check``), ``lab``,
``classroom`` and ``matrix``; ``cli`` and the package's ``__init__`` sit on top. A module imports only from its own
layer or below.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "mailkit"
LAYERS = ["remote", "core", "domain", "server", "clients", "guide", "status", "lab", "classroom", "matrix", "top"]
#: Packages that must work the same on a rented server: none of them may know the lab exists.
NOT_THE_LAB = ("core", "domain", "server", "clients", "guide", "status")


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports() -> dict[str, set[str]]:
    """Each module's imports of other mailkit modules, wherever in the file they are written."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mailkit":
                for alias in node.names:
                    whole = f"{node.module}.{alias.name}"
                    deps.add(whole if whole in known else node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.split(".")[0] == "mailkit")
        graph[name] = deps - {name}
    return graph


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else "top"


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_circles_are_found_when_there_are_some() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_another_that_imports_it_back() -> None:
    assert circles(imports()) == []


def test_every_import_runs_down_or_stays_in_its_layer() -> None:
    upward = [
        f"{module} -> {dep}"
        for module, deps in imports().items()
        for dep in deps
        if dep != "mailkit" and LAYERS.index(layer(dep)) > LAYERS.index(layer(module))
    ]
    assert upward == []


def test_what_runs_on_a_rented_server_never_imports_the_lab() -> None:
    importers = [
        f"{module} -> {dep}"
        for module, deps in imports().items()
        if layer(module) in NOT_THE_LAB
        for dep in deps
        if layer(dep) == "lab"
    ]
    assert importers == []


def test_programs_for_other_hosts_import_nothing_of_mailkit() -> None:
    assert {m: d for m, d in imports().items() if layer(m) == "remote" and d} == {}


def test_the_top_level_is_a_handful_of_modules_and_the_layers() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    folders = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert top == ["__init__.py", "cli.py"]
    assert folders == sorted(LAYERS[:-1])


def test_no_two_modules_share_a_name() -> None:
    names = Counter(m.rsplit(".", 1)[-1] for m, p in modules().items() if p.name != "__init__.py")
    assert [n for n, count in names.items() if count > 1] == []
