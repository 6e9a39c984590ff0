"""Checks: small result values with a fix-it hint, collected apart from how they are shown.

>>> render_text([CheckResult("dns", "mail.example.org resolves", True, "198.51.100.25")])
'ok    dns    mail.example.org resolves  198.51.100.25'
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from mailkit.core.errors import MailkitError

#: When set (``mailkit guide run`` does), every reported check is appended to this JSON-lines file.
RESULTS_FILE_ENV = "MAILKIT_CHECKS_FILE"


@dataclass(frozen=True)
class CheckResult:
    """One verified fact: what was checked, whether it holds, what was seen, and how to fix it."""

    group: str
    name: str
    ok: bool
    detail: str = ""
    fix: str = ""
    #: A step this target cannot take (a lab-only step on your own server): ``detail`` says why and what to do.
    skipped: bool = field(default=False, kw_only=True)


def skipped(group: str, name: str, reason: str) -> CheckResult:
    """A check not run here, with the reason and what to do by hand instead (shown, never counted as passed).

    >>> render_text([skipped("receiver", "DKIM at a receiver", "no receiver here")])
    'skip  receiver    DKIM at a receiver  no receiver here'
    """
    return CheckResult(group, name, True, reason, skipped=True)


class ChecksFailed(MailkitError):
    """At least one check failed; ``results`` holds them all."""

    def __init__(self, results: Sequence[CheckResult]) -> None:
        self.results = list(results)
        failed = [r for r in results if not r.ok]
        super().__init__(f"{len(failed)} of {len(results)} checks failed:\n" + render_text(failed))


def render_text(results: Sequence[CheckResult]) -> str:
    """A plain table for a terminal (the notebook renders HTML from the same values)."""
    width_group = max((len(r.group) for r in results), default=0)
    width_name = max((len(r.name) for r in results), default=0)
    lines = []
    for r in results:
        line = f"{_mark(r):5} {r.group:{width_group + 3}} {r.name:{width_name + 1}} {r.detail}"
        lines.append(line.rstrip())
        if not r.ok and r.fix:
            lines.append(f"      fix: {r.fix}")
    return "\n".join(lines)


def _mark(result: CheckResult) -> str:
    return "skip" if result.skipped else "ok" if result.ok else "FAIL"


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


#: Each cell aligned left and to the top: JupyterLab and nbconvert align table cells right by default, which turns
#: long check texts into ragged right-aligned lines. Set on each cell, as a notebook's HTML keeps no style sheet.
_CELL = 'style="text-align:left;vertical-align:top"'


def checks_html(results: Sequence[CheckResult]) -> str:
    r"""A check table: ok/FAIL, the group, what, what was seen, and for failures how to fix it (linked to the guide).

    >>> table = checks_html([CheckResult("dns", "MX of example.org", True, "mail.example.org")])
    >>> print(table.replace(_CELL, "S").replace("</tr>", "</tr>\n").replace("</td>", "</td>\n"))
    <table><tr><th S></th><th S>group</th><th S>check</th><th S>seen</th><th S>fix</th></tr>
    <tr><td S><span style="color:#116329">ok</span></td>
    <td S>dns</td>
    <td S>MX of example.org</td>
    <td S><code>mail.example.org</code></td>
    <td S></td>
    </tr>
    </table>
    """
    rows = []
    for r in results:
        mark = '<span style="color:#116329">ok</span>' if r.ok else '<b style="color:#82071e">FAIL</b>'
        if r.skipped:
            mark = '<span style="color:#6e7781">skip</span>'
        fix = fix_html(r.fix) if not r.ok else ""
        cells = [mark, html.escape(r.group), html.escape(r.name), f"<code>{html.escape(r.detail)}</code>", fix]
        rows.append("<tr>" + "".join(f"<td {_CELL}>{cell}</td>" for cell in cells) + "</tr>")
    head = "<tr>" + "".join(f"<th {_CELL}>{title}</th>" for title in ("", "group", "check", "seen", "fix")) + "</tr>"
    return f"<table>{head}{''.join(rows)}</table>"


class CheckTable(list[CheckResult]):
    """A list of results that shows itself as a table in a notebook and as text in a terminal."""

    def __str__(self) -> str:
        return render_text(self)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return checks_html(self)


class CheckSummary(CheckTable):
    """Checks a chapter has explained already, run again: one line when they all pass, the table folded under it.

    >>> print(CheckSummary([CheckResult("dns", "MX", True, "mail.example.org")], title="Part 1, again"))
    Part 1, again: 1 check passed
    """

    def __init__(self, results: Sequence[CheckResult], title: str) -> None:
        super().__init__(results)
        self.title = title

    def line(self) -> str:
        passed = sum(r.ok and not r.skipped for r in self)
        skipped = sum(r.skipped for r in self)
        failed = len(self) - passed - skipped
        words = [f"{passed} check{'s' * (passed != 1)} passed"]
        words += [f"{failed} FAILED"] if failed else []
        words += [f"{skipped} skipped"] if skipped else []
        return f"{self.title}: {', '.join(words)}"

    def __str__(self) -> str:
        return self.line() if all(r.ok for r in self) else self.line() + "\n" + render_text(self)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        opened = "" if all(r.ok for r in self) else " open"  # a failure is never folded away
        return (
            f"<details{opened}><summary><b>{html.escape(self.line())}</b> (each check: click)</summary>"
            f"{checks_html(self)}</details>"
        )


def report(results: Sequence[CheckResult], *, again: str | None = None) -> CheckTable:
    """Record the results (for ``mailkit guide run``) and return them as a table; raise if any failed.

    In a notebook, a failed check therefore fails the cell, the run and nbval. ``again`` names checks of an
    earlier chapter run once more: they show as one line (:class:`CheckSummary`), the table folded under it.
    """
    table = CheckTable(results) if again is None else CheckSummary(results, again)
    path = os.environ.get(RESULTS_FILE_ENV)
    if path:
        with open(path, "a") as out:
            for r in table:
                out.write(json.dumps(asdict(r)) + "\n")
    if not all(r.ok for r in table):
        _show_in_notebook(table)
        raise ChecksFailed(table)
    return table


def _show_in_notebook(table: CheckTable) -> None:
    """Show the whole table before the error, so a reader sees what passed as well as what failed."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is not None:
        display(table)


def load_results(path: str) -> list[CheckResult]:
    with open(path) as lines:
        return [CheckResult(**json.loads(line)) for line in lines if line.strip()]
