"""The class board: one HTML page with every student's ``mailkit check`` per part of the guide.

It reads reports as ``mailkit check --json`` writes them, so lab students and students' own servers (a class of
VPSes) appear side by side.

>>> from mailkit.status.rows import Row, StatusReport
>>> page = board_html([StatusReport("lab:student01", "lab:outside", [Row("ports", "25", True, "open", part=1)])])
>>> "student01" in page and "1/1" in page
True
"""

from __future__ import annotations

import html
import http.server
import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mailkit.core.checks import fix_html
from mailkit.core.errors import MailkitError, UsageError
from mailkit.guide.chapters import SERVER_PARTS
from mailkit.status.rows import GUIDE_PARTS, ReportRejected, Row, StatusReport, load_report

PART_COLUMNS = (*SERVER_PARTS, 0)


def check_students(names: Sequence[str], *, vantage: str = "lab:outside", jobs: int = 6) -> list[StatusReport]:
    """``mailkit check`` of each student's host (from the lab's outside host), a few at a time."""
    from mailkit.status.run import check_server

    def one(name: str) -> StatusReport:
        try:
            return check_server(f"lab:{name}", vantage=vantage)
        except MailkitError as exc:
            return StatusReport(f"lab:{name}", vantage, [Row("check", "mailkit check ran", False, str(exc), part=0)])

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, names))


#: The largest report file read for the board.
MAX_REPORT_BYTES = 8 * 1024 * 1024


def read_reports(paths: Sequence[Path]) -> list[StatusReport]:
    """Reports saved with ``mailkit check --json > FILE`` (a student's own server, say)."""
    reports = []
    for path in paths:
        try:
            with path.open("rb") as stream:
                raw = stream.read(MAX_REPORT_BYTES + 1)
            if len(raw) > MAX_REPORT_BYTES:
                raise ReportRejected(f"report: over {MAX_REPORT_BYTES // 1024 // 1024} MiB")
            reports.append(load_report(json.loads(raw)))
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path}: not a report of mailkit check --json ({type(exc).__name__})") from None
        except ReportRejected as exc:
            raise UsageError(f"{path}: {exc}") from None
    return reports


def _cell(rows: list[Row]) -> str:
    if not rows:
        return '<td class="none">-</td>'
    passed = sum(r.ok for r in rows)
    state = "ok" if passed == len(rows) else "fail"
    failed = [r.name for r in rows if not r.ok]
    title = html.escape("\n".join(failed[:12]) + ("\n..." if len(failed) > 12 else ""))
    return f'<td class="{state}" title="{title}">{passed}/{len(rows)}</td>'


def _started(report: StatusReport) -> bool:
    return not any(r.group == "services" and r.name == "postfix installed" for r in report.rows)


def board_html(reports: Sequence[StatusReport], *, refresh: int | None = None) -> str:
    """The page: a row per student, a column per part (passed/all, red when something fails), then each student's
    failing rows with their fixes. ``refresh`` makes an open page reload itself every so many seconds."""
    head = "".join(f"<th>{p}. {html.escape(GUIDE_PARTS[p][0])}</th>" for p in PART_COLUMNS)
    lines = []
    for report in reports:
        parts = report.by_part()
        name = html.escape(report.host.removeprefix("lab:"))
        if not _started(report):
            lines.append(f'<tr><th>{name}</th><td colspan="{len(PART_COLUMNS)}" class="none">not started</td></tr>')
            continue
        cells = "".join(_cell(parts.get(p, [])) for p in PART_COLUMNS)
        lines.append(f'<tr><th><a href="#{name}">{name}</a></th>{cells}</tr>')
    details = []
    for report in reports:
        failed = report.failed
        if not failed or not _started(report):
            continue
        name = html.escape(report.host.removeprefix("lab:"))
        items = "".join(
            f"<li><b>{html.escape(str(r.part))}. {html.escape(r.key)}</b>: <code>{html.escape(r.detail)}</code> "
            f"{fix_html(r.fix)}</li>"
            for r in failed
        )
        details.append(f'<h2 id="{name}">{name}: {len(failed)} to fix</h2><ul>{items}</ul>')
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:.3em .8em;text-align:center}td.ok{background:#dafbe1}td.fail{background:#ffebe9}"
        "td.none{color:#888}li{margin:.3em 0}"
    )
    done = sum(1 for r in reports if _started(r) and r.ok)
    return (
        f'<!doctype html><html><head><meta charset="utf-8">{meta}<title>mailkit class board</title>'
        f"<style>{style}</style></head><body><h1>mailkit class board</h1>"
        f"<p>{len(reports)} students, {done} with every check green. Each cell: checks passed / checks run for "
        f"that part (hover for what fails).</p><table><tr><th>student</th>{head}</tr>{''.join(lines)}</table>"
        f"{''.join(details)}</body></html>\n"
    )


def write_board(
    path: Path, collect: Callable[[], list[StatusReport]], refresh: int | None = None
) -> list[StatusReport]:
    """Collect the reports and write the page atomically (a browser never reads half a page)."""
    reports = collect()
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(board_html(reports, refresh=refresh))
    tmp.replace(path)
    return reports


def serve(path: Path, collect: Callable[[], list[StatusReport]], port: int, interval: int) -> None:
    """Serve the page on 127.0.0.1:``port`` (for a projector; a proxy in front must send ``Host: 127.0.0.1:port``),
    re-checking every ``interval`` seconds; the page reloads itself as often."""
    write_board(path, collect, refresh=interval)

    def again() -> None:
        while True:
            time.sleep(interval)
            write_board(path, collect, refresh=interval)

    threading.Thread(target=again, daemon=True).start()
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), board_handler(path, port)) as server:
        server.serve_forever()


def board_handler(path: Path, port: int) -> type[http.server.BaseHTTPRequestHandler]:
    """A handler that serves the board page and nothing else: no other file, no listing, and only to a browser that
    asked for this machine by name (a ``Host`` of 127.0.0.1 or localhost: DNS rebinding gets 421)."""
    allowed = {f"127.0.0.1:{port}", f"localhost:{port}"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Host", "") not in allowed:
                self._answer(421, b"misdirected request\n", "text/plain")
            elif self.path.split("?", 1)[0] not in ("/", f"/{path.name}"):
                self._answer(404, b"not found\n", "text/plain")
            else:
                self._answer(200, path.read_bytes(), "text/html; charset=utf-8")

        def _answer(self, code: int, body: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
