"""How long-running work says what it is doing: one line of text at a time, to a callable the caller chooses.

>>> def quiet(line: str) -> None: ...
>>> said: Progress = quiet
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

Progress = Callable[[str], None]


class LiveStatus:
    """One status line that follows a long step: updated in place in a notebook, silent elsewhere.

    Its last state is fixed text (``done``), so a stored notebook output stays comparable. With
    ``MAILKIT_STATIC_OUTPUT=1`` (nbval, which does not follow display updates) only that last state is shown.
    """

    def __init__(self, doing: str, done: str, interval: float = 0.3) -> None:
        self.doing, self.done, self.interval = doing, done, interval
        self._handle: Any = None  # IPython's DisplayHandle, when in a notebook
        self._last = 0.0
        self._static = False

    def __enter__(self) -> LiveStatus:
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            return self
        if get_ipython() is not None:
            self._static = os.environ.get("MAILKIT_STATIC_OUTPUT") == "1"
            self._handle = None if self._static else display(_Text(self.doing), display_id=True)
        return self

    def __call__(self, line: str) -> None:
        now = time.monotonic()
        if self._handle is not None and now - self._last >= self.interval:
            self._last = now
            self._handle.update(_Text(f"{self.doing}: {line.strip()[:100]}"))

    def __exit__(self, *exc: object) -> None:
        if self._static:
            from IPython.display import display

            display(_Text(self.done if exc[0] is None else f"{self.doing}: failed"))
        elif self._handle is not None:
            self._handle.update(_Text(self.done if exc[0] is None else f"{self.doing}: failed"))


class _Text:
    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text
