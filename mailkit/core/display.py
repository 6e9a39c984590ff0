"""Showing plans and apply results: plain text for a terminal, HTML for a notebook (checks show themselves).

Deterministic output only (no timestamps, no object ids), so stored notebook outputs compare.

>>> plan_text([])
'no change'
"""

from __future__ import annotations

import difflib
import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mailkit.core.redact import redact
from mailkit.core.resources.base import service_steps

if TYPE_CHECKING:
    from mailkit.core.resources import Change

_LINE_STYLE = {
    "+": "color:#116329;background:#dafbe1",
    "-": "color:#82071e;background:#ffebe9",
    "@": "color:#0550ae",
}
_PRE = "margin:0 0 0.6em 0;padding:0.4em;background:#f6f8fa;font-size:90%;overflow-x:auto"


def _pending_line(pending: Sequence[str]) -> str:
    return f"pending from an interrupted apply: validate and reload {', '.join(pending)}"


BY_HAND = "the same by hand, as root on your own server:"


def by_hand(changes: Sequence[Change], pending: Sequence[str] = ()) -> list[str]:
    """The plan as the commands a person would type: each change's own, then each touched service's check and
    reload (or restart), in the order the apply uses. Redacted as diffs are.

    >>> by_hand([], ["postfix"])
    ['postfix check', 'systemctl reload postfix']
    """
    typed = [line for change in changes for line in change.by_hand]
    for svc, restart in service_steps(changes, pending):
        typed += svc.by_hand(restart)
    return [redact(line) for line in dict.fromkeys(typed)]


def _body(diff: str) -> str:
    """A diff without its ``---``/``+++`` lines (which name the file): what two files' changes may share."""
    return "\n".join(line for line in diff.splitlines() if not line.startswith(("--- ", "+++ ")))


def same_diff_runs(changes: Sequence[Change]) -> list[list[Change]]:
    """Consecutive changes grouped where they make the same change to different files (several files with one
    content, say), so a plan shows that content once; every other change stands alone. Changes described
    rather than shown (a secret, a file removed whole) never group: their descriptions may match by chance.

    >>> from mailkit.core.facts import FileState
    >>> from mailkit.core.resources import File
    >>> off = [File(f"/etc/x/{n}.conf", "enabled = false;").compare([FileState(None)]) for n in "ab"]
    >>> [len(run) for run in same_diff_runs([*off, File("/etc/y", "z").compare([FileState(None)])])]
    [2, 1]
    """
    runs: list[list[Change]] = []
    for change in changes:
        body = _body(change.diff)
        if runs and body and not body.startswith("(") and _body(runs[-1][-1].diff) == body:
            runs[-1].append(change)
        else:
            runs.append([change])
    return runs


def _shared_note(run: Sequence[Change]) -> str:
    return f"(the same change in each of these {len(run)} files:)"


def plan_text(changes: Sequence[Change], pending: Sequence[str] = ()) -> str:
    if not changes:
        return _pending_line(pending) if pending else "no change"
    out = [f"{len(changes)} change(s):"] + ([_pending_line(pending)] if pending else [])
    for run in same_diff_runs(changes):
        out += [f"* {change.summary}" for change in run]
        if len(run) > 1:
            out.append(f"    {_shared_note(run)}")
            out += [f"    {line}" for line in _body(run[0].diff).splitlines()]
        else:
            out += [f"    {line}" for line in run[0].diff.splitlines()]
    typed = by_hand(changes, pending)
    if typed:
        out += [BY_HAND] + [f"    {line}" for text in typed for line in text.splitlines()]
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
    for run in same_diff_runs(changes):
        parts += [f"<div><code>{html.escape(change.summary)}</code></div>" for change in run]
        if len(run) > 1:
            parts.append(f"<div>{html.escape(_shared_note(run))}</div>")
            parts.append(_diff_html(_body(run[0].diff)))
        elif run[0].diff:
            parts.append(_diff_html(run[0].diff))
    typed = by_hand(changes, pending) if changes else []
    if typed:
        parts.append(f'<p class="by-hand">{html.escape(BY_HAND)}</p>')
        parts.append(f'<pre class="by-hand" style="{_PRE}">' + html.escape("\n".join(typed)) + "</pre>")
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
