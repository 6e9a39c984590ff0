"""Notebook 01 opened in JupyterLab in Chromium, as a new reader opens it, and its first cells run against the lab.

Opening it must not change it (a kernel name JupyterLab "corrects" marks the tab unsaved and autosave rewrites
the file: ``git status`` in a clone went dirty); running its parameters and connecting cells must reach the lab's
mail host and say what it is.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from mailkit.lab.lab import Lab
from tests.replay import NOTEBOOKS

pytestmark = pytest.mark.lab

NOTEBOOK = "01-postfix.ipynb"


@pytest.fixture
def jupyterlab(lab: Lab, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """JupyterLab on loopback with a token, over a copy of the notebooks, its state in ``tmp_path``; its URL."""
    shutil.copytree(NOTEBOOKS, tmp_path / "notebooks")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = secrets.token_hex(16)
    env = dict(
        os.environ, MAILKIT_HOST="lab:mail", MAILKIT_STATIC_OUTPUT="1", JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
    )  # fmt: skip
    argv = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path / 'notebooks'}"]  # fmt: skip
    log = (tmp_path / "jupyterlab.log").open("w")
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path / "notebooks")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "jupyterlab.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "JupyterLab did not listen within 60 s"
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}?token={token}", tmp_path / "notebooks" / NOTEBOOK
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _kernel_idle(driver) -> bool:
    status = driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator, .jp-KernelStatus")
    text = " ".join(s.get_attribute("title") or s.text for s in status).lower()
    return "idle" in text


def test_opening_notebook_01_changes_nothing_and_its_first_cells_reach_the_lab(browser, jupyterlab) -> None:
    url, path = jupyterlab
    before = path.read_bytes()
    browser.get(url)
    wait = WebDriverWait(browser, 90, poll_frequency=0.5)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Cell"))
    wait.until(_kernel_idle)
    tab = browser.find_element(By.CSS_SELECTOR, f".lm-TabBar-tab[title*='{NOTEBOOK}'], .lm-TabBar-tab.jp-mod-current")
    kernel = browser.find_element(By.CSS_SELECTOR, ".jp-KernelName, .jp-Toolbar-kernelName").text
    assert kernel == "Python 3 (ipykernel)"
    time.sleep(3)  # what JupyterLab would change on opening, it has changed by now
    assert "jp-mod-dirty" not in (tab.get_attribute("class") or ""), "opening the notebook marked it changed"
    assert path.read_bytes() == before

    cells = browser.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Notebook > .jp-Cell, "
                                  ".jp-NotebookPanel .jp-WindowedPanel-viewport > .jp-Cell")  # fmt: skip
    code = [i for i, c in enumerate(cells) if "jp-CodeCell" in (c.get_attribute("class") or "")]
    connect = code[1]  # the parameters, then the cell that connects and describes the mail host
    cells[0].find_element(By.CSS_SELECTOR, ".jp-InputArea-prompt, .jp-Cell-inputCollapser").click()
    keys = browser.switch_to.active_element
    keys.send_keys(Keys.ESCAPE)
    for _ in range(connect + 1):
        browser.switch_to.active_element.send_keys(Keys.SHIFT, Keys.ENTER)
        time.sleep(0.2)
    output = ".jp-OutputArea-output"
    wait.until(lambda d: cells[connect].find_elements(By.CSS_SELECTOR, output) and _kernel_idle(d))
    said = cells[connect].find_element(By.CSS_SELECTOR, output).text
    assert re.search(r"mail\.example\.org: Debian (trixie|bookworm|sid)", said), said
    assert "Error" not in said
    assert cells[code[0]].find_elements(By.CSS_SELECTOR, ".jp-InputPrompt")[0].text.strip() == "[1]:"
