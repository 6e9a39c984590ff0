"""Showing plans, apply results and checks: plain text for a terminal, HTML for a notebook.

Deterministic output only (no timestamps, no object ids), so stored notebook outputs compare.

>>> plan_text([])
'no change'
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailkit.checks import CheckResult
    from mailkit.resources import Change

_LINE_STYLE = {
    "+": "color:#116329;background:#dafbe1",
    "-": "color:#82071e;background:#ffebe9",
    "@": "color:#0550ae",
}
_PRE = "margin:0 0 0.6em 0;padding:0.4em;background:#f6f8fa;font-size:90%;overflow-x:auto"


def _pending_line(pending: Sequence[str]) -> str:
    return f"pending from an interrupted apply: validate and reload {', '.join(pending)}"


def plan_text(changes: Sequence[Change], pending: Sequence[str] = ()) -> str:
    if not changes:
        return _pending_line(pending) if pending else "no change"
    out = [f"{len(changes)} change(s):"] + ([_pending_line(pending)] if pending else [])
    for change in changes:
        out.append(f"* {change.summary}")
        out += [f"    {line}" for line in change.diff.splitlines()]
    return "\n".join(out)


def _diff_html(diff: str) -> str:
    rows = []
    for line in diff.splitlines():
        style = "" if line.startswith(("+++", "---")) else _LINE_STYLE.get(line[:1], "")
        text = html.escape(line)
        rows.append(f'<span style="{style}">{text}</span>' if style else text)
    return f'<pre style="{_PRE}">' + "\n".join(rows) + "</pre>"


def plan_html(changes: Sequence[Change], pending: Sequence[str] = ()) -> str:
    parts = [f"<p><b>{len(changes)} change(s)</b></p>" if changes else "<p><b>no change</b></p>"]
    if pending:
        parts.append(f"<p>{html.escape(_pending_line(pending))}</p>")
    for change in changes:
        parts.append(f"<div><code>{html.escape(change.summary)}</code></div>")
        if change.diff:
            parts.append(_diff_html(change.diff))
    return "\n".join(parts)


def result_text(changes: Sequence[Change], validated: Sequence[str], reloaded: Sequence[str]) -> str:
    if not changes:
        return "no change; nothing reloaded"
    lines = [f"applied {len(changes)} change(s):"] + [f"  {c.summary}" for c in changes]
    if validated:
        lines.append(f"validated: {', '.join(validated)}")
    lines.append(f"reloaded: {', '.join(reloaded) if reloaded else 'nothing'}")
    return "\n".join(lines)


def result_html(changes: Sequence[Change], validated: Sequence[str], reloaded: Sequence[str]) -> str:
    return f"<pre>{html.escape(result_text(changes, validated, reloaded))}</pre>"


_SECTION = re.compile(r"(\d\d-[a-z0-9-]+\.ipynb)( sections? (\d+)(?:-\d+)?)?")


def fix_html(fix: str) -> str:
    """A fix hint with its guide reference made a link: ``01-postfix.ipynb section 9`` -> that section.

    >>> fix_html("01-postfix.ipynb section 9: add it")
    '<a href="01-postfix.ipynb#section-9">01-postfix.ipynb section 9</a>: add it'
    """

    def link(match: re.Match[str]) -> str:
        anchor = f"#section-{match.group(3)}" if match.group(3) else ""
        return f'<a href="{match.group(1)}{anchor}">{match.group(0)}</a>'

    return _SECTION.sub(link, html.escape(fix))


def checks_html(results: Sequence[CheckResult]) -> str:
    """A check table: ok/FAIL, what, what was seen, and for failures how to fix it (linked to the guide)."""
    rows = []
    for r in results:
        mark = '<span style="color:#116329">ok</span>' if r.ok else '<b style="color:#82071e">FAIL</b>'
        if r.skipped:
            mark = '<span style="color:#6e7781">skip</span>'
        fix = fix_html(r.fix) if not r.ok else ""
        rows.append(
            f"<tr><td>{mark}</td><td>{html.escape(r.group)}</td><td>{html.escape(r.name)}</td>"
            f"<td><code>{html.escape(r.detail)}</code></td><td>{fix}</td></tr>"
        )
    head = "<tr><th></th><th>part</th><th>check</th><th>seen</th><th>fix</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


class SideBySide:
    """Two versions of one file, showing only where they differ, old and new lines paired.

    A notebook gets a two-column table (each differing place a row, the lines in between counted), a terminal a
    unified diff without context, with the same counts.

    >>> print(repr(SideBySide("old", "a\\nx = 1\\nb\\n", "new", "a\\ny = 1\\nb\\n")))
    1 place differs; 2 lines are the same in both
    --- old
    +++ new
      (1 line the same)
    -x = 1
    +y = 1
      (1 line the same)
    """

    def __init__(self, left_title: str, left: str, right_title: str, right: str) -> None:
        self.left_title, self.left, self.right_title, self.right = left_title, left, right_title, right

    def blocks(self) -> list[tuple[list[str], list[str]]]:
        """The file as a list of (left lines, right lines): equal where the two agree, else the paired difference."""
        old, new = self.left.splitlines(), self.right.splitlines()
        matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
        return [(old[i1:i2], new[j1:j2]) for _, i1, i2, j1, j2 in matcher.get_opcodes()]

    def pairs(self) -> list[tuple[list[str], list[str]]]:
        """Only the places that differ: ``(["mail_location = maildir:~"], ["mail_driver = maildir", ...])``."""
        return [(a, b) for a, b in self.blocks() if a != b]

    def _headline(self) -> str:
        places = len(self.pairs())
        same = sum(len(a) for a, b in self.blocks() if a == b)
        verb = "place differs" if places == 1 else "places differ"
        return f"{places} {verb}; {same} lines are the same in both"

    def __repr__(self) -> str:
        out = [self._headline(), f"--- {self.left_title}", f"+++ {self.right_title}"]
        for left, right in self.blocks():
            if left == right:
                out.append(f"  ({_lines(len(left))} the same)")
            else:
                out += [f"-{line}" for line in left] + [f"+{line}" for line in right]
        return "\n".join(out)

    def _repr_html_(self) -> str:
        cell = f'<td style="vertical-align:top;text-align:left"><pre style="{_PRE}">{{}}</pre></td>'
        same = '<tr><td colspan="2" style="color:#57606a;text-align:center">{}</td></tr>'
        rows = []
        for left, right in self.blocks():
            if left == right:
                rows.append(same.format(f"{_lines(len(left))} the same in both"))
            else:
                rows.append(
                    "<tr>"
                    + cell.format(html.escape("\n".join(left)))
                    + cell.format(html.escape("\n".join(right)))
                    + "</tr>"
                )
        head = f"<tr><th>{html.escape(self.left_title)}</th><th>{html.escape(self.right_title)}</th></tr>"
        return f"<p>{html.escape(self._headline())}</p><table>{head}{''.join(rows)}</table>"


def _lines(n: int) -> str:
    return f"{n} line{'s' if n != 1 else ''}"


class LiveStatus:
    """One status line that follows a long step: updated in place in a notebook, silent elsewhere.

    Its last state is fixed text (``done``), so a stored notebook output stays comparable. With
    ``MAILKIT_STATIC_OUTPUT=1`` (nbval, which does not follow display updates) only that last state is shown.
    """

    def __init__(self, doing: str, done: str, interval: float = 0.3) -> None:
        self.doing, self.done, self.interval = doing, done, interval
        self._handle: object | None = None
        self._last = 0.0
        self._static = False

    def __enter__(self) -> LiveStatus:
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            return self
        import os

        if get_ipython() is not None:
            self._static = os.environ.get("MAILKIT_STATIC_OUTPUT") == "1"
            self._handle = None if self._static else display(_Text(self.doing), display_id=True)
        return self

    def __call__(self, line: str) -> None:
        import time

        now = time.monotonic()
        if self._handle is not None and now - self._last >= self.interval:
            self._last = now
            self._handle.update(_Text(f"{self.doing}: {line.strip()[:100]}"))  # type: ignore[attr-defined]

    def __exit__(self, *exc: object) -> None:
        if self._static:
            from IPython.display import display

            display(_Text(self.done if exc[0] is None else f"{self.doing}: failed"))
        elif self._handle is not None:
            self._handle.update(_Text(self.done if exc[0] is None else f"{self.doing}: failed"))  # type: ignore[attr-defined]


class _Text:
    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text
