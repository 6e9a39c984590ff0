"""One release of ``mailkit matrix``: a lab of its own, the guide run on it, and what it found, as JSON.

Started by :mod:`mailkit.matrix.releases` as its own process, with ``MAILKIT_LAB_INSTANCE`` (its lab's names and state)
and ``MAILKIT_NETNS`` (its network namespace, entered before anything else) set::

    python -m mailkit.matrix.worker --release bookworm --parts 1,2 --output out/matrix/bookworm

``--down`` only takes the instance's lab down (the clean-up after a worker that died).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from mailkit.guide.chapters import DEFAULT_PARTS

#: Packages whose versions the report compares across releases.
VERSIONED = ("postfix", "dovecot-core", "rspamd", "openssl", "libssl3t64", "libssl3")

#: What mailkit wrote on the mail host, read back for the report's release-by-release diffs.
#: Each is a command whose output stands for one file (``postconf -n`` is main.cf as Postfix reads it).
RENDERED = {
    "main.cf (postconf -n)": "postconf -n 2>/dev/null",
    "master.cf (postconf -M)": "postconf -M 2>/dev/null",
    "/etc/dovecot/dovecot.conf": "cat /etc/dovecot/dovecot.conf 2>/dev/null",
    "/etc/rspamd/local.d": 'for f in /etc/rspamd/local.d/*.conf; do [ -f "$f" ] && echo "## $f" && cat "$f"; done',
    "/etc/dovecot/sieve": 'for f in /etc/dovecot/sieve/*.sieve; do [ -f "$f" ] && echo "## $f" && cat "$f"; done',
}


def host_report(conn: Any) -> dict[str, Any]:
    """Versions (one round trip), kernel and the rendered files, read from the mail host."""
    from mailkit.core.facts import PackageVersion, gather

    versions: dict[str, str] = {}
    for name, version in zip(VERSIONED, gather(conn, [PackageVersion(n) for n in VERSIONED]), strict=True):
        if version is not None:
            versions["openssl (libssl)" if name.startswith("libssl") else name] = version
    files = {}
    for label, command in RENDERED.items():
        text = conn.run(["sh", "-c", command], check=False).stdout
        if text.strip():
            files[label] = text
    return {
        "versions": versions,
        "kernel": conn.run(["uname", "-r"]).stdout.strip(),
        "debian": conn.run(["cat", "/etc/debian_version"]).stdout.strip(),
        "files": files,
    }


def run(release: str, parts: list[int], output: Path) -> dict[str, Any]:
    from mailkit.guide.runner import run_guide
    from mailkit.lab.lab import Lab
    from mailkit.lab.lab_target import lab_connection
    from mailkit.lab.layout import INSTANCE

    result: dict[str, Any] = {"release": release, "instance": INSTANCE, "parts": [], "error": None}
    lab = Lab()
    lab.down()
    started = time.monotonic()
    try:
        lab.up(release)
        result["lab_up_seconds"] = round(time.monotonic() - started, 1)
        guide = run_guide(parts, output / "notebooks", target="lab:mail")
        for notebook, seconds in guide.seconds.items():
            checks = guide.checks_by_notebook.get(notebook, [])
            result["parts"].append(
                {
                    "notebook": notebook,
                    "part": int(notebook[:2]),
                    "seconds": round(seconds, 1),
                    "checks": [
                        {"group": c.group, "name": c.name, "ok": c.ok, "detail": c.detail, "fix": c.fix} for c in checks
                    ],
                }
            )
        result["error"] = guide.error
        with lab_connection("mail") as mail:
            result.update(host_report(mail))
    except Exception as exc:  # reported in the matrix, never lost
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        lab.down()
        result["seconds"] = round(time.monotonic() - started, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(prog="mailkit.matrix.worker")
    args.add_argument("--release")
    args.add_argument("--parts", default=DEFAULT_PARTS)
    args.add_argument("--output", type=Path)
    args.add_argument("--down", action="store_true")
    opts = args.parse_args(argv)
    namespace = os.environ.get("MAILKIT_NETNS")
    if namespace:
        from mailkit.lab.netns import enter

        enter(namespace)  # first: every socket and child of this process lives in the lab's namespace
    if opts.down:
        from mailkit.lab.lab import Lab

        Lab().down()
        return 0
    opts.output.mkdir(parents=True, exist_ok=True)
    result = run(opts.release, [int(p) for p in opts.parts.split(",") if p], opts.output)
    (opts.output / "result.json").write_text(json.dumps(result, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
