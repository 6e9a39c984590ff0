"""Before a headless run on your own server: every value checked, the login and ``sudo -n`` tried, passwords ready.

Nothing here changes the server: the parameters and passwords are validated on this machine, then one command
(``true``, through ``sudo -n`` for a user other than root) proves the login works unattended.

>>> sudo_refused("sudo: a password is required")
True
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mailkit.core.errors import MailkitError, UsageError
from mailkit.core.local import write_private
from mailkit.guide.params import load
from mailkit.server.target import OUTSIDE_ENV, PASSWORDS_ENV, read_passwords_file, resolve_target, target_of

#: The notebooks' default mailboxes, used when a params file names none.
DEFAULT_MAILBOXES = ("alice@example.org", "bob@example.org", "carol@b.example.org")


def sudo_refused(stderr: str) -> bool:
    """Whether ``sudo -n`` said it would need a password (or is not allowed at all)."""
    text = stderr.lower()
    return "sudo" in text and ("password is required" in text or "not allowed" in text or "not in the sudoers" in text)


def check_login(destination: str) -> None:
    """One harmless command on the server, as the guide will run them: a one-line error if it cannot."""
    with target_of(destination).connect() as conn:
        try:
            result = conn.run(["true"], check=False, timeout=30)
        except MailkitError as exc:
            raise UsageError(f"{destination}: cannot log in: {exc}") from None
        if result.exited != 0:
            said = (result.stderr.strip().splitlines() or ["(nothing)"])[-1][:200]
            if conn.sudo and sudo_refused(result.stderr):
                user = conn.endpoint.user
                raise UsageError(
                    f"{destination}: 'sudo -n' refused ({said}): give {user} passwordless sudo "
                    f"(a line '{user} ALL=(ALL) NOPASSWD: ALL' in /etc/sudoers.d/{user}) or log in as root"
                )
            raise UsageError(f"{destination}: 'true' failed on the server: {said}")


def ask_passwords(mailboxes: list[str]) -> dict[str, str]:
    """Each mailbox's password, asked twice on the terminal (never echoed, never printed)."""
    import getpass
    import sys

    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for passwords: give --passwords FILE ('address password' lines, 0600)")
    found = {}
    for mailbox in mailboxes:
        first = getpass.getpass(f"password for {mailbox}: ")
        if first != getpass.getpass(f"password for {mailbox} (again): "):
            raise UsageError(f"the two passwords for {mailbox} differ")
        found[mailbox] = first
    return found


@contextmanager
def prepare_own_server(
    host: str,
    params_file: Path | None,
    passwords_file: Path | None,
    outside: str | None,
    progress: Callable[[str], None] = lambda _: None,
) -> Iterator[tuple[str, dict[str, Any], dict[str, str]]]:
    """Validate everything, then try the login; yield the target, the parameters and the kernels' environment.

    Passwords come from ``passwords_file``, else the file ``MAILKIT_PASSWORDS_FILE`` names, else the prompt; asked at
    the prompt, they go to a file of mode 0600 in a private temporary folder, removed afterwards.
    """
    destination = resolve_target(host)
    if destination.partition(":")[0] == "lab":
        raise UsageError("--host is your own server: for the lab, leave --host out")
    params = load(params_file) if params_file else {}
    outside_name = resolve_target(outside) if outside else None
    if passwords_file is None and os.environ.get(PASSWORDS_ENV):  # as the notebooks take it
        passwords_file = Path(os.environ[PASSWORDS_ENV])
    mailboxes = [str(m) for m in params.get("MAILBOXES", DEFAULT_MAILBOXES)]
    if passwords_file is not None:
        read_passwords_file(passwords_file, mailboxes)  # refused when others can read it, or when one is missing
    progress(f"logging in to {destination}")
    check_login(destination)
    environ = {OUTSIDE_ENV: outside_name} if outside_name else {}
    if passwords_file is not None:
        yield destination, params, {**environ, PASSWORDS_ENV: str(passwords_file.resolve())}
        return
    given = ask_passwords(mailboxes)
    with tempfile.TemporaryDirectory(prefix="mailkit-passwords-") as folder:
        path = Path(folder) / "passwords"
        write_private(path, "".join(f"{m} {p}\n" for m, p in given.items()).encode())
        yield destination, params, {**environ, PASSWORDS_ENV: str(path)}
