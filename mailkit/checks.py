"""Checks: small result values with a fix-it hint, collected apart from how they are shown.

>>> render_text([CheckResult("dns", "mail.example.org resolves", True, "198.51.100.25")])
'ok    dns    mail.example.org resolves  198.51.100.25'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckResult:
    """One verified fact: what was checked, whether it holds, what was seen, and how to fix it."""

    group: str
    name: str
    ok: bool
    detail: str = ""
    fix: str = ""


def render_text(results: list[CheckResult]) -> str:
    """A plain table for a terminal (the notebook renders HTML from the same values)."""
    width_group = max((len(r.group) for r in results), default=0)
    width_name = max((len(r.name) for r in results), default=0)
    lines = []
    for r in results:
        line = f"{'ok' if r.ok else 'FAIL':5} {r.group:{width_group + 3}} {r.name:{width_name + 1}} {r.detail}"
        lines.append(line.rstrip())
        if not r.ok and r.fix:
            lines.append(f"      fix: {r.fix}")
    return "\n".join(lines)
