"""The workshop board and the matrix report, as a teacher and a maintainer open them in Chromium.

The board is served by the real command (``mailkit workshop board --serve``) from reports as students' own servers
send them (``mailkit check --json`` files, hostile input): it loads, shows each part's state, reloads itself when a
student fixes something, and shows a student's text as text, never as markup. The matrix report page renders its
tables within a laptop's window and opens a release's template diff.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from mailkit.matrix.report import _example, build_report, write_report
from mailkit.status.rows import Row, StatusReport
from tests.browser.conftest import overflow
from tests.loopback import free_port

MARKUP = "<img src=x onerror=\"document.title='injected'\">"


def _report(path: Path, fixed: bool) -> None:
    rows = [
        Row("ports", "25", True, "open", part=1),
        Row("dns", "MX", fixed, "mail.example.org" if fixed else MARKUP, "" if fixed else "publish the MX", part=1),
        Row("auth", "submission", True, "AUTH after STARTTLS", part=2),
    ]
    path.write_text(StatusReport("vps.example.net", "outside.example.net", rows).json())


@pytest.fixture
def served_board(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``mailkit workshop board --serve`` checking every 10 s (its shortest) one student's report file."""
    report = tmp_path / "student.json"
    _report(report, fixed=False)
    port = free_port()
    argv = [sys.executable, "-m", "mailkit.cli", "workshop", "board", "--serve", str(port), "--interval", "10",
            "--report", str(report), "--output", str(tmp_path / "board.html")]  # fmt: skip
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}/board.html"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
                assert time.monotonic() < deadline, "the board did not start serving in 30 s"
                time.sleep(0.2)
        yield url, report
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_board_loads_shows_a_failing_part_and_reloads_itself_when_it_is_fixed(browser, served_board) -> None:
    url, report = served_board
    browser.get(url)
    assert browser.title == "mailkit class board"
    part1 = browser.find_element(By.XPATH, "//tr[th='vps.example.net']/td[1]")
    assert part1.get_attribute("class") == "fail" and part1.text == "1/2"
    assert "MX" in part1.get_attribute("title")
    assert "publish the MX" in browser.find_element(By.TAG_NAME, "body").text
    assert overflow(browser) <= 0
    _report(report, fixed=True)
    # nobody touches the browser: the page reloads itself and the server has checked again
    WebDriverWait(browser, 40, poll_frequency=1).until(
        lambda d: d.find_element(By.XPATH, "//tr[th='vps.example.net']/td[1]").get_attribute("class") == "ok"
    )
    assert browser.find_element(By.XPATH, "//tr[th='vps.example.net']/td[1]").text == "2/2"
    assert "to fix" not in browser.find_element(By.TAG_NAME, "body").text


def test_a_students_report_is_shown_as_text_never_run_as_markup(browser, served_board) -> None:
    url, _ = served_board
    browser.get(url)
    time.sleep(1)  # an injected onerror would have fired by now
    assert browser.title == "mailkit class board"
    assert browser.find_elements(By.CSS_SELECTOR, "img") == []
    assert MARKUP in browser.find_element(By.TAG_NAME, "body").text


def test_the_matrix_report_renders_within_the_window_and_opens_a_diff(browser, tmp_path: Path) -> None:
    long_reply = "250 2.0.0 Ok: queued as 4Q8T3x1Y2Zz (a server's reply, long as some are) " * 4
    results = [_example("bookworm", True, long_reply), _example("trixie", False, "451 4.7.1 try again later"),
               _example("sid", True)]  # fmt: skip
    results[1]["files"] = {"main.cf (postconf -n)": "a = 2\nsmtpd_tls_security_level = may\n"}
    report = build_report(results, parts=[1], wall_seconds=61.0)
    write_report(report, tmp_path)
    browser.get((tmp_path / "report.html").as_uri())
    assert browser.title == "mailkit matrix"
    assert overflow(browser) <= 0
    failing = browser.find_elements(By.CSS_SELECTOR, "span.fail")
    assert failing and failing[0].text == "FAIL"
    assert failing[0].value_of_css_property("color") == "rgba(130, 7, 30, 1)"
    summary = browser.find_element(By.CSS_SELECTOR, "details summary")
    diff = browser.find_element(By.CSS_SELECTOR, "details pre")
    assert not diff.is_displayed()
    summary.click()
    assert diff.is_displayed() and "smtpd_tls_security_level" in diff.text
    assert "mono" in diff.value_of_css_property("font-family").lower()
