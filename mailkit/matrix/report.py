"""The matrix report: release x part x check, versions, times and the rendered files' differences.

Collecting (the workers' JSON) is apart from rendering: :func:`build_report` makes one JSON-able dict,
:func:`markdown` and :func:`html_page` render it, :func:`write_report` writes the three files.

>>> r = build_report([_example("trixie", ok=True)], parts=[1], wall_seconds=1.0)
>>> r["summary"]["trixie"]
{'passed': 1, 'failed': 0, 'error': None}
>>> r["ok"]
True
"""

from __future__ import annotations

import difflib
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPORT_VERSION = 1


def _example(release: str, ok: bool, detail: str = "250") -> dict[str, Any]:
    """A worker result of the smallest shape (for examples and tests)."""
    check = {"group": "delivery", "name": "to alice", "ok": ok, "detail": detail, "fix": "" if ok else "see 01"}
    return {
        "release": release,
        "parts": [{"notebook": "01-postfix.ipynb", "part": 1, "seconds": 20.0, "checks": [check]}],
        "versions": {"postfix": "3.10"},
        "kernel": "6.1",
        "files": {"main.cf (postconf -n)": "a = 1\n"},
        "error": None,
    }


def check_rows(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A release's checks by key ``"part N / group / name"`` (a name seen twice in one part gets ``#2``)."""
    rows: dict[str, dict[str, Any]] = {}
    for part in result.get("parts", []):
        for check in part["checks"]:
            key = f"part {part['part']} / {check['group']} / {check['name']}"
            n = 2
            unique = key
            while unique in rows:
                unique, n = f"{key} #{n}", n + 1
            rows[unique] = check
    return rows


def _file_diffs(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """For each rendered file, each release's differences from the first release that has it."""
    diffs: dict[str, dict[str, str]] = {}
    names = sorted({name for r in results for name in r.get("files", {})})
    for name in names:
        having = [r for r in results if name in r.get("files", {})]
        first = having[0]
        for other in having[1:]:
            lines = difflib.unified_diff(
                first["files"][name].splitlines(keepends=True),
                other["files"][name].splitlines(keepends=True),
                fromfile=f"{name} ({first['release']})",
                tofile=f"{name} ({other['release']})",
            )
            text = "".join(lines)
            diffs.setdefault(name, {})[other["release"]] = text or "(the same)"
    return diffs


def compare_with(report: dict[str, Any], old: dict[str, Any]) -> dict[str, list[str]]:
    """What changed since an earlier report: new failures, checks fixed, seen values and versions changed."""
    new_failures, fixed, changed, versions = [], [], [], []
    for release, rows in report["checks"].items():
        before = old.get("checks", {}).get(release, {})
        for key, check in rows.items():
            was = before.get(key)
            where = f"{release}: {key}"
            if not check["ok"] and (was is None or was["ok"]):
                new_failures.append(f"{where}: {check['detail']}")
            elif check["ok"] and was is not None and not was["ok"]:
                fixed.append(where)
            elif was is not None and was["detail"] != check["detail"]:
                changed.append(f"{where}: {was['detail']!r} -> {check['detail']!r}")
        for name, version in report["results"].get(release, {}).get("versions", {}).items():
            was_version = old.get("results", {}).get(release, {}).get("versions", {}).get(name)
            if was_version != version:
                versions.append(f"{release}: {name} {was_version or '(none)'} -> {version}")
    return {"new_failures": new_failures, "fixed": fixed, "changed_values": changed, "changed_versions": versions}


def build_report(
    results: Sequence[dict[str, Any]],
    *,
    parts: Sequence[int],
    wall_seconds: float,
    baseline: dict[str, Any] | None = None,
) -> dict[str, Any]:
    checks = {r["release"]: check_rows(r) for r in results}
    summary = {
        r["release"]: {
            "passed": sum(c["ok"] for c in checks[r["release"]].values()),
            "failed": sum(not c["ok"] for c in checks[r["release"]].values()),
            "error": r.get("error"),
        }
        for r in results
    }
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "releases": [r["release"] for r in results],
        "parts": list(parts),
        "wall_seconds": round(wall_seconds, 1),
        "summary": summary,
        "checks": checks,
        "results": {r["release"]: {k: v for k, v in r.items() if k != "parts"} for r in results},
        "times": {r["release"]: {p["notebook"]: p["seconds"] for p in r.get("parts", [])} for r in results},
        "file_diffs": _file_diffs(results),
    }
    report["ok"] = all(s["failed"] == 0 and not s["error"] for s in summary.values()) and bool(results)
    if baseline is not None:
        report["baseline"] = compare_with(report, baseline)
    return report


def _all_keys(report: dict[str, Any]) -> list[str]:
    keys: list[str] = []
    for rows in report["checks"].values():
        keys += [k for k in rows if k not in keys]
    return keys


def _cell(check: dict[str, Any] | None, width: int = 60) -> str:
    if check is None:
        return "-"
    detail = check["detail"] if len(check["detail"]) <= width else check["detail"][: width - 1] + "…"
    return f"ok {detail}" if check["ok"] else f"**FAIL** {detail}"


def markdown(report: dict[str, Any]) -> str:
    """The report for a pull request: summary, versions, times, the check table, baseline and file diffs."""
    releases = report["releases"]
    verdict = "**all checks pass**" if report["ok"] else "**failures**"
    scope = f"Parts {', '.join(map(str, report['parts']))} on {', '.join(releases)}"
    out = ["# mailkit matrix", "", f"{scope}: {verdict} ({report['wall_seconds']:.0f} s).", ""]
    out += ["| release | passed | failed | error |", "|---|---|---|---|"]
    for release, s in report["summary"].items():
        error = (s["error"] or "").splitlines()[0][:80] if s["error"] else ""
        out.append(f"| {release} | {s['passed']} | {s['failed']} | {error} |")
    names = sorted({n for r in report["results"].values() for n in r.get("versions", {})})
    out += ["", "## Versions", "", "| | " + " | ".join(releases) + " |", "|---|" + "---|" * len(releases)]
    for name in [*names, "kernel"]:
        row = [report["results"][r].get("versions", {}).get(name, "-") if name != "kernel"
               else report["results"][r].get("kernel", "-") for r in releases]  # fmt: skip
        out.append(f"| {name} | " + " | ".join(row) + " |")
    notebooks = sorted({n for t in report["times"].values() for n in t})
    out += [
        "",
        "## Time per part (seconds)",
        "",
        "| | " + " | ".join(releases) + " |",
        "|---|" + "---|" * len(releases),
    ]
    for nb in notebooks:
        out.append(f"| {nb} | " + " | ".join(str(report["times"][r].get(nb, "-")) for r in releases) + " |")
    if "baseline" in report:
        out += ["", "## Against the baseline", ""]
        for title, items in report["baseline"].items():
            out += [f"**{title.replace('_', ' ')}**: {len(items)}", *[f"- {i}" for i in items], ""]
    out += ["", "## Checks", "", "| check | " + " | ".join(releases) + " |", "|---|" + "---|" * len(releases)]
    for key in _all_keys(report):
        cells = [_cell(report["checks"][r].get(key)) for r in releases]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in [key, *cells]) + " |")
    out += ["", "## What the templates rendered, release against release", ""]
    for name, per in report["file_diffs"].items():
        for release, diff in per.items():
            out += [
                f"<details><summary>{name}: {release}</summary>",
                "",
                "```diff",
                diff.rstrip(),
                "```",
                "</details>",
                "",
            ]
    return "\n".join(out) + "\n"


_STYLE = (
    "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin:0.5em 0 1.5em}"
    "td,th{border:1px solid #d0d7de;padding:3px 6px;font-size:90%;vertical-align:top;text-align:left}"
    ".ok{color:#116329}.fail{color:#82071e;font-weight:bold}pre{background:#f6f8fa;padding:0.5em;overflow-x:auto}"
    ".add{color:#116329}.del{color:#82071e}"
)


def html_page(report: dict[str, Any]) -> str:
    """One page for a browser: the same sections as the Markdown, the check table coloured."""
    e = html.escape
    releases = report["releases"]
    head = "".join(f"<th>{e(r)}</th>" for r in releases)
    parts = [f"<!doctype html><meta charset='utf-8'><title>mailkit matrix</title><style>{_STYLE}</style>",
             "<h1>mailkit matrix</h1>",
             f"<p>Parts {e(', '.join(map(str, report['parts'])))} on {e(', '.join(releases))}: "
             + ("<b class='ok'>all checks pass</b>" if report["ok"] else "<b class='fail'>failures</b>")
             + f" ({report['wall_seconds']:.0f} s).</p>",
             "<table><tr><th>release</th><th>passed</th><th>failed</th><th>error</th></tr>"]  # fmt: skip
    for release, s in report["summary"].items():
        parts.append(f"<tr><td>{e(release)}</td><td>{s['passed']}</td><td>{s['failed']}</td>"
                     f"<td><pre>{e(s['error'] or '')}</pre></td></tr>")  # fmt: skip
    parts.append("</table><h2>Versions</h2><table><tr><th></th>" + head + "</tr>")
    names = sorted({n for r in report["results"].values() for n in r.get("versions", {})})
    for name in names:
        cells = "".join(f"<td>{e(report['results'][r].get('versions', {}).get(name, '-'))}</td>" for r in releases)
        parts.append(f"<tr><td>{e(name)}</td>{cells}</tr>")
    kernel = "".join(f"<td>{e(report['results'][r].get('kernel', '-'))}</td>" for r in releases)
    parts.append(
        f"<tr><td>kernel</td>{kernel}</tr></table><h2>Time per part (seconds)</h2><table><tr><th></th>{head}</tr>"
    )
    for nb in sorted({n for t in report["times"].values() for n in t}):
        cells = "".join(f"<td>{report['times'][r].get(nb, '-')}</td>" for r in releases)
        parts.append(f"<tr><td>{e(nb)}</td>{cells}</tr>")
    parts.append("</table>")
    if "baseline" in report:
        parts.append("<h2>Against the baseline</h2>")
        for title, items in report["baseline"].items():
            lis = "".join(f"<li>{e(i)}</li>" for i in items)
            parts.append(f"<p><b>{e(title.replace('_', ' '))}</b>: {len(items)}</p><ul>{lis}</ul>")
    parts.append(f"<h2>Checks</h2><table><tr><th>check</th>{head}</tr>")
    for key in _all_keys(report):
        row: list[str] = []
        for r in releases:
            check = report["checks"][r].get(key)
            if check is None:
                row.append("<td>-</td>")
            else:
                mark = "<span class='ok'>ok</span>" if check["ok"] else "<span class='fail'>FAIL</span>"
                fix = f"<br><i>{e(check['fix'])}</i>" if not check["ok"] and check["fix"] else ""
                row.append(f"<td>{mark} {e(check['detail'])}{fix}</td>")
        parts.append(f"<tr><td>{e(key)}</td>{''.join(row)}</tr>")
    parts.append("</table><h2>What the templates rendered, release against release</h2>")
    for name, per in report["file_diffs"].items():
        for release, diff in per.items():
            lines = []
            for line in diff.splitlines():
                cls = "add" if line.startswith("+") else "del" if line.startswith("-") else ""
                lines.append(f"<span class='{cls}'>{e(line)}</span>" if cls else e(line))
            parts.append(
                f"<details><summary>{e(name)}: {e(release)}</summary><pre>{chr(10).join(lines)}</pre></details>"
            )
    return "\n".join(parts) + "\n"


def write_report(report: dict[str, Any], output: Path) -> list[Path]:
    """``report.json``, ``report.md`` and ``report.html`` in ``output``."""
    output.mkdir(parents=True, exist_ok=True)
    files = {"report.json": json.dumps(report, indent=1, sort_keys=True), "report.md": markdown(report),
             "report.html": html_page(report)}  # fmt: skip
    for name, text in files.items():
        (output / name).write_text(text)
    return [output / name for name in files]
