"""The floor: the same workload applied by a minimal hand-written script, for bench/apply.py to compare.

One paramiko connection (host key checked, TCP_NODELAY on), one batched read (hash, mode and owner of every
file, ``postconf -n``), and, only when something differs, one batched write (files from a here-document,
postmap, postconf -e/-X, reload). No backup, no validation, no lock: what mailkit does on top is its cost.

Run:  .venv/bin/python bench/floor.py apply|remove [--cool-down] [--check]
(``--cool-down`` leaves main.cf's new mtime alone, so Postfix waits for it to "cool down" before reading it;
``--check`` runs ``postfix check`` before the reload, as mailkit validates before anything goes live.)
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import socket
import sys
from pathlib import Path

import paramiko

sys.path.insert(0, str(Path(__file__).parent))
from workload import DIRECTORY, OBSOLETE, REMOVED_SETTING, SETTINGS, files, tables

LAB = Path("/var/lib/mailkit/lab")
HOST = "198.51.100.25"


def connect() -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(LAB / "known_hosts"))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    sock = socket.create_connection((HOST, 22), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.connect(HOST, username="root", key_filename=str(LAB / "id_ed25519"), sock=sock, look_for_keys=False)
    return client


def run(client: paramiko.SSHClient, script: str) -> str:
    stdin, stdout, stderr = client.exec_command("sh -s")
    stdin.write(script.encode())
    stdin.channel.shutdown_write()
    out = stdout.read().decode()
    if stdout.channel.recv_exit_status() != 0:
        raise SystemExit(f"floor: the host said: {stderr.read().decode()}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("state", choices=("apply", "remove"))
    parser.add_argument("--cool-down", action="store_true")
    parser.add_argument("--check", action="store_true", help="run 'postfix check' before the reload")
    args = parser.parse_args()
    present = args.state == "apply"
    wanted = {**files(), **tables()} if present else {}
    paths = [*files(), *tables(), OBSOLETE]
    client = connect()
    read = "".join(
        f"[ -f {p} ] && echo {p} $(stat -c %a:%U:%G {p}) $(sha256sum < {p}) || echo {p} absent\n"
        for p in map(shlex.quote, paths)
    )
    file_lines, _, postconf = run(client, read + "echo ==; postconf -n\n").partition("==\n")
    seen = dict(line.split(" ", 1) for line in file_lines.splitlines())
    main_cf = dict(
        line.partition(" = ")[::2] if " = " in line else (line.rstrip(" ="), "") for line in postconf.splitlines()
    )
    write = []
    for path in paths:
        content = wanted.get(path)
        if content is None:
            if seen[path] != "absent":
                write.append(f"rm -f {shlex.quote(path)} {shlex.quote(path)}.lmdb\n")
            continue
        if seen[path] != f"644:root:root {hashlib.sha256(content.encode()).hexdigest()}  -":
            write.append(f"mkdir -p {DIRECTORY}\ncat > {shlex.quote(path)}.new <<'EOF_FLOOR'\n{content}EOF_FLOOR\n")
            write.append(f"chmod 644 {shlex.quote(path)}.new && mv {shlex.quote(path)}.new {shlex.quote(path)}\n")
            if path in tables():
                write.append(f"postmap lmdb:{shlex.quote(path)}\n")
    settings = SETTINGS if present else {}
    edits = [f"{k}={v}" for k, v in settings.items() if main_cf.get(k) != v]
    drop = [k for k in ([REMOVED_SETTING] if present else [REMOVED_SETTING, *SETTINGS]) if k in main_cf]
    if edits:
        write.append(f"postconf -e {' '.join(map(shlex.quote, edits))}\n")
    if drop:
        write.append(f"postconf -X {' '.join(drop)}\n")
    if not present and seen.get(f"{DIRECTORY}/file00.conf", "absent") != "absent":
        write.append(f"rm -rf {DIRECTORY}\n")
    if write:
        if not args.cool_down:
            write.append("touch -d '-3 sec' /etc/postfix/main.cf\n")
        check = "postfix check\n" if args.check else ""
        run(client, "set -e\n" + "".join(write) + check + "postfix reload 2>/dev/null\n")
    client.close()


if __name__ == "__main__":
    main()
