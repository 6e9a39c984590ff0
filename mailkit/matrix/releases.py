"""``mailkit matrix``: the whole guide on several Debian releases at once, on this one machine, and one report.

Each release gets a lab of its own (lab instance 1, 2, ...: its own names, state directory and cgroups) inside
a network namespace of its own (``mkmatrix1``, ...), so the labs use the same addresses without ever meeting, and
none touches the guide's lab (instance 0). The images are built first, here (debootstrap needs the archive);
then one worker process per release runs in its namespace (:mod:`mailkit.matrix.worker`). Their apt proxy is one
apt-cacher-ng on this machine's loopback with a cache of its own, relayed into each namespace.

>>> plan_instances(["bookworm", "trixie"])
[(1, 'bookworm', 'mkmatrix1'), (2, 'trixie', 'mkmatrix2')]
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mailkit.core.errors import UsageError
from mailkit.core.progress import Progress
from mailkit.lab import netns, proxy, rootfs
from mailkit.lab.lab import check_can_run_lab, check_release
from mailkit.lab.layout import HOSTS, PROXY_PORT
from mailkit.matrix.report import build_report, write_report

#: The shared proxy's loopback port (the guide's own lab uses 3142 on its lab address).
MATRIX_PROXY_PORT = 3143
MATRIX_STATE = Path("/var/lib/mailkit/matrix")
#: A worker that runs longer than this is stopped (the whole guide takes about 4 minutes on one release).
WORKER_TIMEOUT = 3600


def plan_instances(releases: Sequence[str]) -> list[tuple[int, str, str]]:
    """(lab instance, release, namespace) for each release, in the order given; at most nine."""
    if not releases:
        raise UsageError("--releases: name at least one release")
    if len(set(releases)) != len(releases):
        raise UsageError(f"--releases: a release is named twice in {','.join(releases)}")
    if len(releases) > 9:
        raise UsageError("--releases: at most nine labs run side by side")
    return [(i, check_release(r), netns.runner_namespace(i)) for i, r in enumerate(releases, start=1)]


def build_images(releases: Sequence[str], jobs: int, progress: Progress) -> None:
    """Every base and layer the labs need, built at the same time for different releases (one lock each)."""
    roles = sorted({spec.layer for spec in HOSTS.values() if spec.layer})

    def build(release: str) -> None:
        rootfs.ensure_base(release, lambda line: None)
        for role in roles:
            rootfs.ensure_layer(release, role, lambda line: None)
        progress(f"{release}: images ready")

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(build, releases))


def _worker_env(instance: int, namespace: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILKIT_")}
    env.update(MAILKIT_LAB_INSTANCE=str(instance), MAILKIT_LAB_PROXY="external", MAILKIT_NETNS=namespace)
    if "MAILKIT_CACHE_DIR" in os.environ:
        env["MAILKIT_CACHE_DIR"] = os.environ["MAILKIT_CACHE_DIR"]
    return env


def _run_worker(instance: int, release: str, namespace: str, parts: str, output: Path) -> dict[str, Any]:
    out = output / release
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").unlink(missing_ok=True)
    argv = [sys.executable, "-m", "mailkit.matrix.worker", "--release", release, "--parts", parts, "--output", str(out)]
    env = _worker_env(instance, namespace)
    with open(out / "worker.log", "w") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=WORKER_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
    found = out / "result.json"
    if found.exists():
        return dict(json.loads(found.read_text()))
    # The worker died before it could report: say so, and take its lab down for it.
    subprocess.run([sys.executable, "-m", "mailkit.matrix.worker", "--down"], env=env, check=False, capture_output=True)
    tail = (out / "worker.log").read_text(errors="replace").splitlines()[-15:]
    return {"release": release, "instance": instance, "parts": [], "error": "worker died:\n" + "\n".join(tail)}


def run_matrix(
    releases: Sequence[str],
    parts: Sequence[int],
    output: Path,
    *,
    jobs: int | None = None,
    baseline: Path | None = None,
    progress: Progress = lambda _: None,
) -> dict[str, Any]:
    """Run the guide's ``parts`` on every release side by side; write and return the report."""
    check_can_run_lab()
    plan = plan_instances(list(releases))
    jobs = max(1, min(jobs or len(plan), len(plan)))
    old = json.loads(baseline.read_text()) if baseline else None
    part_list = ",".join(str(p) for p in parts)
    output.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    progress(f"building or finding the images of {', '.join(releases)}")
    build_images([r for _, r, _ in plan], jobs, progress)
    relays: list[netns.ProxyRelay] = []
    proxy_pid = proxy.start(MATRIX_STATE, "127.0.0.1", MATRIX_PROXY_PORT, "apt-cacher-ng-matrix")
    try:
        for _, _, namespace in plan:
            netns.create(namespace)
            relay = netns.ProxyRelay(namespace, PROXY_PORT, ("127.0.0.1", MATRIX_PROXY_PORT))
            relay.start()
            relays.append(relay)
        progress(f"running parts {part_list} on {len(plan)} labs, {jobs} at a time")

        def one(item: tuple[int, str, str]) -> dict[str, Any]:
            instance, release, namespace = item
            result = _run_worker(instance, release, namespace, part_list, output)
            failed = sum(not c["ok"] for p in result["parts"] for c in p["checks"])
            progress(f"{release}: {'error' if result.get('error') else 'done'}, {failed} failed check(s)")
            return result

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(one, plan))
    finally:
        for relay in relays:
            relay.stop()
        stop_proxy(proxy_pid)
        for _, _, namespace in plan:
            netns.delete(namespace)
    report = build_report(results, parts=list(parts), wall_seconds=time.monotonic() - started, baseline=old)
    write_report(report, output)
    return report


def stop_proxy(pid: int) -> None:
    """Stop the shared proxy (a child of this process: reaped, so no zombie is left)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
