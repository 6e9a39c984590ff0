"""Programs that run on another host with ``python3`` and its standard library only.

mailkit sends each one's source (:func:`source`) and runs it there with ``python3 -c``; here they are ordinary
modules, so the linter, the type checker and the unit tests read them as they read the rest of mailkit.

>>> "def main() -> None:" in source("probe")
True
"""

from __future__ import annotations

from pathlib import Path


def source(name: str) -> str:
    """The text of the program ``name`` (a module of this package), as it is sent."""
    return (Path(__file__).parent / f"{name}.py").read_text()
