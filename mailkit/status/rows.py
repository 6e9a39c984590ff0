"""The status of a live server as rows: each one part of the guide, a verdict, what was seen and how to fix it.

>>> r = StatusReport("lab:mail", "this machine", [Row("ports", "25 on IPv4", True, "open", part=1)])
>>> r.ok, r.markdown().splitlines()[0]
(True, '# mailkit check: lab:mail')
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from mailkit.core.checks import CheckResult, render_text
from mailkit.core.errors import UsageError
from mailkit.guide.chapters import CHAPTERS

#: The guide's server parts (:mod:`mailkit.guide.chapters`) by number, as (title, notebook); 0 is the server
#: itself, outside the guide's parts.
GUIDE_PARTS = {
    0: ("the server", ""),
    **{c.number: (c.title, c.notebook) for c in CHAPTERS if c.server_part},
}


@dataclass(frozen=True)
class Row(CheckResult):
    """One checked fact about a live server, with the part of the guide it belongs to (and a diff, for drift)."""

    part: int = 0
    diff: str = ""

    @property
    def key(self) -> str:
        """What identifies the row from one run to the next (``--changes``)."""
        return f"{self.group} / {self.name}"


@dataclass
class StatusReport:
    """Every row of one ``mailkit check`` run, and where it was run from."""

    host: str
    vantage: str
    rows: list[Row]
    changes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if not r.ok]

    def by_part(self) -> dict[int, list[Row]]:
        parts: dict[int, list[Row]] = {}
        for row in self.rows:
            parts.setdefault(row.part, []).append(row)
        return dict(sorted(parts.items()))

    def as_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "from": self.vantage,
            "ok": self.ok,
            "rows": [asdict(r) for r in self.rows],
            "changes": self.changes,
        }

    def json(self) -> str:
        return json.dumps(self.as_json(), indent=2)

    def text(self) -> str:
        lines = [f"mailkit check: {self.host} (outside checks from {self.vantage})"]
        for part, rows in self.by_part().items():
            title, _ = GUIDE_PARTS[part]
            lines += ["", f"[{part}] {title}", render_text(rows)]
            lines += [f"      {line}" for r in rows if not r.ok and r.diff for line in r.diff.splitlines()]
        if self.changes:
            lines += ["", "changes since the last run:", *[f"  {c}" for c in self.changes]]
        failed = len(self.failed)
        lines += ["", f"{len(self.rows) - failed} ok, {failed} failed"]
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [f"# mailkit check: {self.host}", "", f"Outside checks from {self.vantage}.", ""]
        for part, rows in self.by_part().items():
            title, notebook = GUIDE_PARTS[part]
            lines += [f"## {part}. {title}" + (f" ({notebook})" if notebook else ""), ""]
            lines += ["| | check | seen | fix |", "|---|---|---|---|"]
            for r in rows:
                fix = "" if r.ok else r.fix
                lines.append(f"| {'ok' if r.ok else '**FAIL**'} | {_cell(r.key)} | {_cell(r.detail)} | {_cell(fix)} |")
            for r in rows:
                if not r.ok and r.diff:
                    lines += ["", f"{r.key}:", "", "```diff", r.diff.rstrip(), "```"]
            lines.append("")
        if self.changes:
            lines += ["## Changes since the last run", "", *[f"- {c}" for c in self.changes], ""]
        failed = len(self.failed)
        lines.append(f"**{len(self.rows) - failed} ok, {failed} failed.**")
        return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


#: Bounds on a report read back from a file (a student's own, say): a real one is far below them.
MAX_ROWS = 2000
MAX_TEXT = 4000
MAX_DIFF = 200_000
_ROW_TEXT = ("group", "name", "detail", "fix")


class ReportRejected(UsageError):
    """A report file that is not what ``mailkit check --json`` writes; nothing of it is shown."""


def load_report(data: Any) -> StatusReport:
    """A report back from its JSON (``mailkit check --json`` of any host, for the workshop board), every field
    checked: its type, its length, ``part`` one of the guide's parts. A file somebody sends you is hostile.

    >>> load_report({"host": "h", "rows": [{"group": "g", "name": "n", "ok": True, "part": "<img>"}]})
    Traceback (most recent call last):
    ...
    mailkit.status.rows.ReportRejected: report: row 1: part must be one of 0, 1, 2, 3, 4
    """
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ReportRejected("report: not a mailkit check --json report (no list of rows)")
    if len(data["rows"]) > MAX_ROWS:
        raise ReportRejected(f"report: more than {MAX_ROWS} rows")
    host, vantage = _text(data.get("host"), "host"), _text(data.get("from", "?"), "from")
    changes = data.get("changes", [])
    if not isinstance(changes, list) or len(changes) > MAX_ROWS:
        raise ReportRejected("report: changes must be a list")
    rows = [_row(r, number) for number, r in enumerate(data["rows"], 1)]
    return StatusReport(host, vantage, rows, [_text(c, "changes") for c in changes])


def _text(value: Any, what: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise ReportRejected(f"report: {what} must be text of at most {limit} characters")
    return value


def _row(data: Any, number: int) -> Row:
    if not isinstance(data, dict) or not set(data) <= {*_ROW_TEXT, "ok", "skipped", "part", "diff"}:
        raise ReportRejected(f"report: row {number} is not a row of mailkit check")
    texts = {key: _text(data.get(key, ""), f"row {number}: {key}") for key in _ROW_TEXT}
    if not isinstance(data.get("ok"), bool) or not isinstance(data.get("skipped", False), bool):
        raise ReportRejected(f"report: row {number}: ok must be true or false")
    part = data.get("part", 0)
    if type(part) is not int or part not in GUIDE_PARTS:
        raise ReportRejected(f"report: row {number}: part must be one of {', '.join(map(str, GUIDE_PARTS))}")
    diff = _text(data.get("diff", ""), f"row {number}: diff", MAX_DIFF)
    return Row(**texts, ok=data["ok"], skipped=data.get("skipped", False), part=part, diff=diff)
