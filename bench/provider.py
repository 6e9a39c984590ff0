"""Your own server's path, timed in provider mode, side by side with the lab's path, in one run.

Run as root:  .venv/bin/python bench/provider.py [--runs 3] [--no-guide]

1. ACME: on a fresh provider mail host, certbot's first certificate from the lab's pebble (account, order, HTTP-01
   on port 80, issuance), then ``certbot renew --force-renewal`` ``--runs`` times.
2. DNS the registrar's way: zone text handed to ``mailkit lab registrar`` until the provider's resolver answers
   with it, for a new name (its "no such name" may be cached) and for a changed value (the old one may be cached);
   ``--runs`` of each. The lab's resolver keeps answers at most 10 s; a real one keeps them for their TTL.
3. The guide, parts 1-4: on the lab's mail host as ``lab:mail`` (root, TSIG updates, the lab's CA) and on the same
   host as ``mail-vps`` (sudo, registrar and resolver, pebble and certbot), one after the other, both from a fresh host.

Prints medians (min-max). Leaves provider mode on and a fresh plain mail host.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from mailkit.core import engine
from mailkit.core.resources import AcmeCertificate, Packages
from mailkit.domain.records import RecordSet, txt
from mailkit.lab import provider
from mailkit.lab.lab import Lab
from mailkit.server.target import Published, target_of


def timed(action: Callable[[], object]) -> float:
    start = time.monotonic()
    action()
    return time.monotonic() - start


def shown(values: list[float]) -> str:
    return f"{statistics.median(values):7.1f} s  ({min(values):.1f}-{max(values):.1f}, n={len(values)})"


def acme(lab: Lab, runs: int) -> tuple[list[float], list[float]]:
    with lab.connection("mail") as mail:
        engine.apply(mail, [Packages(("certbot",))])
        certificate = AcmeCertificate("mail.example.org", provider.ACME_DIRECTORY, "postmaster@example.org")
        issued = [timed(lambda: engine.apply(mail, [certificate]))]
        renew = ["certbot", "renew", "--force-renewal", "--no-random-sleep-on-renew"]
        renewed = [timed(lambda: mail.run(renew, timeout=300)) for _ in range(runs)]
    return issued, renewed


def dns(runs: int) -> tuple[list[float], list[float]]:
    server = target_of(provider.ALIAS)
    new_names, changed = [], []
    for _ in range(runs):
        name = f"bench-{secrets.token_hex(4)}.example.org"
        for value, bucket in (("first", new_names), ("second", changed)):
            done = server.publish([RecordSet(name, "TXT", (txt(f"mailkit bench {value}"),))])
            assert isinstance(done, Published) and done.waited is not None
            bucket.append(done.waited)
        server.publish([RecordSet(name, "TXT", ())])  # deleted again
    return new_names, changed


def guide(args: list[str], env: dict[str, str]) -> float:
    with tempfile.TemporaryDirectory() as out:
        argv = [sys.executable, "-m", "mailkit.cli", "guide", "run", "--output", out, *args]
        start = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env}, check=False)
        seconds = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"guide run {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    print(f"    {done.stdout.strip().splitlines()[-1]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-guide", action="store_true", help="Skip the two guide runs (about 6 minutes).")
    options = parser.parse_args()
    lab = Lab()
    lab.up()
    lab.provider_up()
    env = provider.environment(lab)
    os.environ.update(env)
    lab.reset()
    issued, renewed = acme(lab, options.runs)
    new_names, changed = dns(options.runs)
    print("provider mode (trixie)")
    print(f"  ACME: first certificate (account, order, HTTP-01)   {shown(issued)}")
    print(f"  ACME: forced renewal                                 {shown(renewed)}")
    print(f"  DNS: zone text -> resolver answers, a new name      {shown(new_names)}")
    print(f"  DNS: zone text -> resolver answers, a changed value {shown(changed)}")
    if not options.no_guide:
        folder = provider.folder(lab)
        lab.provider_down()
        lab.reset()
        lab_run = guide(["--keep"], {})
        lab.provider_up()
        lab.reset()
        own = guide(["--host", provider.ALIAS, "--params", str(folder / "params.json"),
                     "--passwords", str(folder / "passwords")], env)  # fmt: skip
        print(f"  guide, parts 1-4, lab:mail                          {lab_run:7.1f} s")
        print(f"  guide, parts 1-4, mail-vps (provider mode)          {own:7.1f} s  ({own / lab_run:.2f}x)")
    lab.provider_down()
    lab.reset()


if __name__ == "__main__":
    main()
