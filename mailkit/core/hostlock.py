"""One apply at a time on a host: an ``flock`` held by an SSH channel for as long as the apply runs.

The lock lives on the host (``/var/lib/mailkit/lock``), so two machines applying to one server wait
for each other too. It is released when the channel closes, including when the connection drops or
the process dies: nothing is left to clean up.

A transaction goes on when its connection drops (so that no host is left half-configured), and holds a
second lock for as long as it runs (:data:`TRANSACTION_LOCK`, taken by the process that runs it on the
host). The next apply takes the first lock, then waits for that one to be free: it never reads, plans or
writes while an earlier transaction is still at work.

>>> with HostLock(conn):  # doctest: +SKIP
...     ...
"""

from __future__ import annotations

import shlex
import time
from types import TracebackType
from typing import TYPE_CHECKING

from mailkit.core.errors import MailkitError
from mailkit.core.progress import Progress

if TYPE_CHECKING:
    from mailkit.core.ssh import Connection, RemoteProcess

LOCK_TIMEOUT = 300.0
#: Held on the host by the process that runs a transaction, from before it reads its script until it ends.
TRANSACTION_LOCK = "transaction.lock"
#: How long to wait quietly before saying that another apply holds the lock.
_QUIET = 1.0


def _say(message: str) -> None:
    print(message, flush=True)


class LockTimeout(MailkitError):
    """Another apply held the host's lock for longer than we were willing to wait."""


class HostLock:
    """Hold the host's apply lock while the ``with`` block runs."""

    def __init__(
        self,
        conn: Connection,
        state_dir: str = "/var/lib/mailkit",
        timeout: float = LOCK_TIMEOUT,
        progress: Progress | None = None,
    ) -> None:
        self.conn, self.path, self.timeout, self.progress = conn, f"{state_dir}/lock", timeout, progress
        self.state_dir = state_dir
        self.host = getattr(getattr(conn, "endpoint", None), "hostname", "the host")
        self._process: RemoteProcess | None = None

    def __enter__(self) -> HostLock:
        wait = int(self.timeout)
        transaction = shlex.quote(f"{self.state_dir}/{TRANSACTION_LOCK}")
        held = f"flock -w {wait} -E 75 {transaction} true || exit 75; echo locked; exec cat >/dev/null"
        script = (
            f"umask 077; mkdir -p {shlex.quote(self.state_dir)} && "
            f"exec flock -w {wait} -E 75 {shlex.quote(self.path)} sh -c {shlex.quote(held)}"
        )
        process = self.conn.start(["sh", "-c", script])
        started, told, seen = time.monotonic(), False, b""
        try:
            while b"locked\n" not in seen:
                seen += process.read(0.1)
                if b"locked\n" in seen:
                    break
                code = process.exit_code()
                if code == 75:
                    raise LockTimeout(
                        f"another mailkit apply held the lock on {self.host} for more than "
                        f"{self.timeout:.0f} s ({self.path}); try again when it has finished"
                    )
                if code is not None:
                    raise MailkitError(f"cannot take the apply lock {self.path} on {self.host} (exit {code})")
                if not told and time.monotonic() - started > _QUIET:
                    message = f"waiting for another mailkit apply on {self.host} to finish"
                    (self.progress or _say)(message)
                    told = True
        except BaseException:
            process.close()
            raise
        self._process = process
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._process is not None:
            self._process.close()
            self._process = None
