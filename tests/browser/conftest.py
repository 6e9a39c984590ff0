"""A real browser for the pages mailkit makes: Debian's Chromium, driven by its ChromeDriver through selenium.

Headless, with a fresh profile per test and Chromium's own background traffic off (this machine reaches nothing
outside: the flags keep it from trying). A test that fails leaves a screenshot and the page's HTML in
``MAILKIT_ARTEFACTS`` (default ``out/test-artefacts``), named after the test.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTEFACTS = Path(os.environ.get("MAILKIT_ARTEFACTS", Path(__file__).resolve().parents[2] / "out" / "test-artefacts"))
#: A laptop's window, and a phone's.
DESKTOP, PHONE = (1280, 900), (390, 844)


def _missing() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} is missing: install Debian's {package} (./run setup does)"
    return None


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = _missing()
    if missing:
        pytest.fail(missing)  # never a skip: the browser tests are part of the suite
    profile = tempfile.mkdtemp(prefix="mailkit-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", "--disable-extensions", f"--user-data-dir={profile}",
                 f"--window-size={DESKTOP[0]},{DESKTOP[1]}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            keep_artefacts(driver, request.node.nodeid)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def keep_artefacts(driver: object, nodeid: str) -> None:
    """A screenshot and the HTML of what the browser showed when the test failed."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid)[-150:]
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTEFACTS / f"{name}.png"))  # type: ignore[attr-defined]
    (ARTEFACTS / f"{name}.html").write_text(driver.page_source)  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]


def resize(driver: object, size: tuple[int, int]) -> None:
    """The page's viewport to ``size`` (the window's outer size is set so the inner one matches)."""
    width, height = size
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")  # type: ignore[attr-defined]
    outer = driver.get_window_size()  # type: ignore[attr-defined]
    driver.set_window_size(width + outer["width"] - inner[0], height + outer["height"] - inner[1])  # type: ignore[attr-defined]


def overflow(driver: object) -> int:
    """How many pixels the page is wider than the window: a reader would have to scroll the page sideways."""
    return int(
        driver.execute_script(  # type: ignore[attr-defined]
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
    )
