"""Notebook 01 opened in JupyterLab, in Chromium, as a new reader does after ``./run setup``.

JupyterLab serves a copy of the committed notebooks; the reader opens part 1 and runs its first cells against the
lab's mail host. Opening it must not change it: a kernel name that differs from the environment's makes JupyterLab
rewrite the file (the tab turns "unsaved" and autosave writes it), so reading the guide in a clone made ``git status``
dirty. Running the cells shows what the mail host is, over SSH, from the notebook's own code.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from mailkit.lab.lab import Lab
from tests.loopback import free_port

pytestmark = pytest.mark.lab

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
FIRST = "01-postfix.ipynb"
#: How long JupyterLab may take to start, and a kernel to answer (a 2-core machine, cold caches).
START_SECONDS, RUN_SECONDS = 90, 120


@pytest.fixture
def jupyterlab(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """JupyterLab on loopback, serving a copy of ``notebooks/``, with its own config, data and runtime folders (no
    reader's settings, nothing written to the repository), no update or news checks (this machine reaches nothing
    outside), and a token of its own."""
    root = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, root)
    token, port = secrets.token_hex(16), free_port()
    env = dict(os.environ)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        env[name] = str(tmp_path / name.lower())
    # A reader's answer to "get notified about Jupyter news?": no (it would fetch from the internet)
    settings = tmp_path / "jupyter_config_dir" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}\n')
    argv = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
            f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={token}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.news_url=",
            "--ServerApp.open_browser=False", "--allow-root"]  # fmt: skip
    log = (tmp_path / "jupyterlab.log").open("wb")
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "jupyterlab.log").read_text()[-3000:]
                assert time.monotonic() < deadline, f"JupyterLab did not listen in {START_SECONDS} s"
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/lab/tree/{FIRST}?token={token}", root
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _cells(driver: object) -> list[object]:
    return driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell")  # type: ignore[attr-defined]


def test_notebook_01_opens_unchanged_and_its_first_cells_run_against_the_lab(
    lab: Lab, browser, jupyterlab: tuple[str, Path]
) -> None:
    url, root = jupyterlab
    before = (root / FIRST).read_bytes()
    release = lab.status()["release"]
    browser.get(url)
    wait = WebDriverWait(browser, RUN_SECONDS, poll_frequency=0.5)
    # the kernel the notebook names is the environment's: it starts, goes idle, and its name is the notebook's
    wait.until(lambda d: "| Idle" in d.find_element(By.ID, "jp-main-statusbar").text)
    kernel = browser.find_element(By.CSS_SELECTOR, ".jp-KernelName").text
    assert kernel == "Python 3 (ipykernel)"
    tab = browser.find_element(By.CSS_SELECTOR, "#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")
    assert FIRST in tab.text
    time.sleep(3)  # what a changed kernel name did: the tab marked unsaved at once, autosave soon after
    assert "jp-mod-dirty" not in (tab.get_attribute("class") or ""), "opening the notebook changed it"
    assert (root / FIRST).read_bytes() == before, "opening the notebook rewrote the file"

    # run the parameters cell and the one that connects, as a reader does: click, then Shift+Enter twice
    cells = _cells(browser)
    parameters = next(i for i, c in enumerate(cells) if "TARGET = " in c.text)
    cells[parameters].find_element(By.CSS_SELECTOR, ".jp-InputArea-editor .cm-content").click()
    for _ in range(2):  # the first runs the parameters and selects the next cell; the second runs that one
        ActionChains(browser).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
        time.sleep(0.5)
    connect = parameters + 1
    expected = f"mail.example.org: Debian {release}"

    def shown(driver: object) -> str:
        output = _cells(driver)[connect].find_element(By.CSS_SELECTOR, ".jp-OutputArea").text  # type: ignore[attr-defined]
        assert "Traceback" not in output and "Error" not in output, output
        return output if expected in output else ""

    assert expected in wait.until(shown)
    prompt = _cells(browser)[connect].find_element(By.CSS_SELECTOR, ".jp-InputPrompt").text
    assert prompt.strip() == "[2]:", prompt  # the second cell this kernel ran: the parameters ran first
