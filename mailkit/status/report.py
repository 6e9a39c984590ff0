"""The status of a live server as rows: each one part of the guide, a verdict, what was seen and how to fix it.

>>> r = StatusReport("lab:mail", "this machine", [Row("ports", "25 on IPv4", True, "open", part=1)])
>>> r.ok, r.markdown().splitlines()[0]
(True, '# mailkit check: lab:mail')
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from mailkit.checks import CheckResult, render_text

#: The guide's notebooks, by part (0: the server itself, outside the guide's parts).
GUIDE_PARTS = {
    0: ("the server", ""),
    1: ("Postfix", "01-postfix.ipynb"),
    2: ("Dovecot", "02-dovecot.ipynb"),
    3: ("your e-mails are spam", "03-spam-outbound.ipynb"),
    4: ("avoiding spam", "04-spam-inbound.ipynb"),
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


def load_report(data: dict[str, Any]) -> StatusReport:
    """A report back from its JSON (``mailkit check --json`` of any host, for the workshop board)."""
    rows = [Row(**r) for r in data["rows"]]
    return StatusReport(data["host"], data.get("from", "?"), rows, list(data.get("changes", [])))
