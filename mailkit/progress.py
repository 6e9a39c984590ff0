"""How long-running work says what it is doing: one line of text at a time, to a callable the caller chooses.

>>> def quiet(line: str) -> None: ...
>>> said: Progress = quiet
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None]
