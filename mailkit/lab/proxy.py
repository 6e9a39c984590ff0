"""The apt proxy: Debian's apt-cacher-ng on the machine's leg of the lab network.

Lab hosts have no route out; apt reaches the Debian archive through this proxy, which serves
nothing else (``ForceManaged``) and keeps downloaded packages between labs.

>>> proxy_argv(Path("/c"), Path("/d"), Path("/l"))[:3]
['apt-cacher-ng', '-c', '/c']
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from mailkit.core.errors import LabError
from mailkit.lab.layout import DEBIAN_MIRROR, GATEWAY_V4, PROXY_PORT, cache_dir

SUPPORT_DIR = Path("/usr/lib/apt-cacher-ng")  # the package's mirror lists, used for remapping


def proxy_argv(conf: Path, cache: Path, logs: Path, bind: str = GATEWAY_V4, port: int = PROXY_PORT) -> list[str]:
    return [
        "apt-cacher-ng",
        "-c",
        str(conf),
        "ForeGround=1",
        f"Port={port}",
        f"BindAddress={bind}",
        f"CacheDir={cache}",
        f"LogDir={logs}",
        f"SupportDir={SUPPORT_DIR}",
        "ForceManaged=1",
        "ExThreshold=4",
        "PassThroughPattern=^$",
    ]


def start(state: Path, bind: str = GATEWAY_V4, port: int = PROXY_PORT, cache_name: str = "apt-cacher-ng") -> int:
    """Start the proxy in the background (its own config dir under ``state``); return its pid.

    ``mailkit matrix`` starts one of its own on loopback, with a cache of its own (two proxies never share one).
    """
    conf, logs = state / "apt-cacher-ng", state / "apt-cacher-ng-log"
    cache = cache_dir() / cache_name
    if conf.exists():
        shutil.rmtree(conf)
    conf.mkdir(parents=True)
    (conf / "backends_debian").write_text(DEBIAN_MIRROR.rstrip("/") + "/\n")
    (conf / "acng.conf").write_text("Remap-debrep: file:deb_mirror*.gz /debian ; file:backends_debian\n")
    for d in (logs, cache):
        d.mkdir(parents=True, exist_ok=True)
    with open(logs / "stdout.log", "ab") as out:
        proc = subprocess.Popen(
            proxy_argv(conf, cache, logs, bind, port),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"apt-cacher-ng exited at start; see {logs / 'stdout.log'}")
        try:
            socket.create_connection((bind, port), timeout=0.5).close()
            return proc.pid
        except OSError:
            time.sleep(0.05)
    raise LabError(f"apt-cacher-ng did not listen on {bind}:{port}")
