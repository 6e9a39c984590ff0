"""rspamd's controller password is never on a command line (security review, finding 10).

``rspamadm pw`` takes a password on its argv (which every local account sees in ``ps``) or from a terminal.
The guide's recipe gives it a terminal. A stand-in ``rspamadm`` here behaves as the real one does (the lab
runs the real one: part 4's tests and the secrets scan read the hash it made): it reads only ``/dev/tty``,
turning echo off first, and records its argv.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from mailkit.guide.part4 import _PASSWORD_RECIPE

FAKE_RSPAMADM = r"""#!/usr/bin/env python3
import hashlib, json, os, sys, termios
with open(os.environ["ARGV_LOG"], "w") as log:
    json.dump(sys.argv[1:], log)
tty = os.open("/dev/tty", os.O_RDWR)
old = termios.tcgetattr(tty)
new = old[:]
new[3] &= ~termios.ECHO
termios.tcsetattr(tty, termios.TCSAFLUSH, new)
os.write(tty, b"Enter passphrase: ")
line = b""
while not line.endswith(b"\n"):
    line += os.read(tty, 1)
termios.tcsetattr(tty, termios.TCSAFLUSH, old)
os.write(tty, b"\n")
password = line.strip()
if len(password) != 48:
    sys.exit("Invalid password")
print("$2$fakesalt$" + hashlib.sha256(password).hexdigest())
"""


def test_the_controller_password_reaches_rspamadm_on_a_terminal_never_on_its_argv(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "rspamadm"
    fake.write_text(FAKE_RSPAMADM)
    fake.chmod(0o755)
    out, argv_log = tmp_path / "controller-password.inc", tmp_path / "argv.json"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "ARGV_LOG": str(argv_log)}
    done = subprocess.run(
        ["bash", "-c", f"set -eu\nout={out}\n{_PASSWORD_RECIPE}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert argv_log.read_text() == '["pw", "-q"]', "no password on rspamadm's command line"
    content = out.read_text()
    assert content.startswith('password = "$2$fakesalt$') and content.endswith('";\n')
    assert len(content.split("$")[-1].rstrip('";\n')) == 64, "a hash of a 48-character password was made"
