"""``Connection``: one SSH connection to a host, opened on first use, over paramiko.

Commands are argv lists, each argument quoted with ``shlex``; results are :class:`Result` values
and failures raise :class:`CommandError` carrying the result. Host keys are checked against
known_hosts, never added silently.

>>> with Connection("mail.example.org", ssh_config=Path("/var/lib/mailkit/lab/ssh_config")) as mail:  # doctest: +SKIP
...     mail.run(["postconf", "-h", "myhostname"]).stdout
'mail.example.org\\n'
"""

from __future__ import annotations

import getpass
import os
import select
import shlex
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import paramiko

from mailkit.core.errors import CommandError, ConnectionLost, HostKeyError, MailkitError
from mailkit.core.hostkeys import RefuseUnknownHost, mismatch_message
from mailkit.core.result import Result

DEFAULT_SSH_CONFIG = Path("~/.ssh/config")
#: Another ssh_config in place of ~/.ssh/config, as ``ssh -F`` takes one (provider mode's, say).
SSH_CONFIG_ENV = "MAILKIT_SSH_CONFIG"
#: A command on a host that runs longer than this is taken as hung (installs and upgrades pass their own).
COMMAND_TIMEOUT = 600.0
#: What one command may print (stdout and stderr together) before mailkit stops reading it.
MAX_OUTPUT = 64 * 1024 * 1024
DEFAULT_KNOWN_HOSTS = (Path("~/.ssh/known_hosts"), Path("/etc/ssh/ssh_known_hosts"))


@dataclass(frozen=True)
class Endpoint:
    """Where and how to connect, after ~/.ssh/config (or another ssh_config) has been applied."""

    alias: str
    hostname: str
    port: int
    user: str
    key_files: tuple[Path, ...]
    known_hosts: tuple[Path, ...]
    identities_only: bool


def resolve_endpoint(
    host: str,
    *,
    user: str | None = None,
    port: int | None = None,
    ssh_config: Path | None = None,
    known_hosts: Path | None = None,
    key_file: Path | None = None,
) -> Endpoint:
    """Apply ssh_config to ``host`` (``[user@]host``): explicit arguments win, then the config, then defaults.

    >>> resolve_endpoint("admin@mx.example.org", ssh_config=Path("/nonexistent")).user
    'admin'
    """
    if "@" in host:
        user_part, host = host.rsplit("@", 1)
        user = user or user_part
    config_path = (ssh_config or Path(os.environ.get(SSH_CONFIG_ENV) or DEFAULT_SSH_CONFIG)).expanduser()
    options: dict[str, Any] = {}
    if config_path.is_file():
        options = paramiko.SSHConfig.from_path(str(config_path)).lookup(host)
    files = [Path(p).expanduser() for p in options.get("identityfile", [])]
    if key_file:
        files.insert(0, key_file)
    if known_hosts:
        known: tuple[Path, ...] = (known_hosts,)
    elif "userknownhostsfile" in options:
        known = tuple(Path(p).expanduser() for p in options["userknownhostsfile"].split())
    else:
        known = tuple(p.expanduser() for p in DEFAULT_KNOWN_HOSTS)
    return Endpoint(
        alias=host,
        hostname=options.get("hostname", host),
        port=int(port or options.get("port", 22)),
        user=user or options.get("user") or getpass.getuser(),
        key_files=tuple(files),
        known_hosts=known,
        identities_only=options.get("identitiesonly", "no").lower() == "yes",
    )


#: How much of a command's input is handed to paramiko at once: its ``sendall`` copies what is left after every
#: window-sized send, so one call with hundreds of MB spends minutes copying (measured: 50 MB in 5 minutes).
SEND_CHUNK = 256 * 1024


def _send_all(channel: paramiko.Channel, data: bytes) -> None:
    """Send ``data`` on ``channel`` in chunks (see :data:`SEND_CHUNK`)."""
    view = memoryview(data)
    for start in range(0, len(data), SEND_CHUNK):
        channel.sendall(bytes(view[start : start + SEND_CHUNK]))


class Connection:
    """A lazily opened SSH connection. Cheap to create; use as a context manager or call ``close()``."""

    def __init__(
        self,
        host: str,
        *,
        user: str | None = None,
        port: int | None = None,
        ssh_config: Path | None = None,
        known_hosts: Path | None = None,
        key_file: Path | None = None,
        sudo: bool | None = None,
        connect_timeout: float = 10,
        tcp_nodelay: bool = True,
    ) -> None:
        self.endpoint = resolve_endpoint(
            host, user=user, port=port, ssh_config=ssh_config, known_hosts=known_hosts, key_file=key_file
        )
        #: Prefix commands with ``sudo -n`` (default: when logging in as someone other than root).
        self.sudo = self.endpoint.user != "root" if sudo is None else sudo
        self.connect_timeout = connect_timeout
        self.tcp_nodelay = tcp_nodelay
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        #: Exec and SFTP channels opened so far (the benchmarks count round trips with it).
        self.channels_opened = 0

    def __repr__(self) -> str:
        e = self.endpoint
        return f"Connection({e.user}@{e.hostname}:{e.port})"

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    # -- transport -----------------------------------------------------------------------------
    def _connect(self) -> paramiko.SSHClient:
        e = self.endpoint
        client = paramiko.SSHClient()
        existing = [p for p in e.known_hosts if p.is_file()]
        for path in existing:
            client.load_system_host_keys(str(path))  # read-only: paramiko never writes these back
        client.set_missing_host_key_policy(RefuseUnknownHost(list(e.known_hosts)))
        try:
            sock = socket.create_connection((e.hostname, e.port), timeout=self.connect_timeout)
        except OSError as exc:
            raise MailkitError(f"cannot reach {e.hostname}:{e.port} ({exc})") from exc
        # paramiko leaves Nagle on: every small channel message would wait ~40 ms for an ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(self.tcp_nodelay))
        try:
            client.connect(
                e.hostname,
                port=e.port,
                username=e.user,
                key_filename=[str(p) for p in e.key_files] or None,  # type: ignore[arg-type]  # a list works
                look_for_keys=not e.identities_only,
                allow_agent=not e.identities_only,
                sock=sock,
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
            )
        except paramiko.BadHostKeyException as exc:
            sock.close()
            raise HostKeyError(mismatch_message(e.hostname, exc.key, exc.expected_key, existing)) from exc
        except paramiko.AuthenticationException as exc:
            sock.close()
            raise MailkitError(f"SSH login as {e.user}@{e.hostname} refused: {exc}") from exc
        except HostKeyError:
            sock.close()
            raise
        except (paramiko.SSHException, OSError) as exc:
            sock.close()
            raise MailkitError(f"SSH to {e.hostname}:{e.port} failed: {exc}") from exc
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(30)
        return client

    @property
    def client(self) -> paramiko.SSHClient:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _alive(self) -> bool:
        transport = self._client.get_transport() if self._client else None
        return bool(transport and transport.is_active())

    def _open_channel(self) -> paramiko.Channel:
        """A new session channel; if the transport has dropped, reconnect once and retry."""
        for attempt in (1, 2):
            if self._client is not None and not self._alive():
                self.close()
            try:
                transport = self.client.get_transport()
                assert transport is not None
                channel = transport.open_session(timeout=self.connect_timeout)
                self.channels_opened += 1
                return channel
            except (paramiko.SSHException, EOFError, OSError) as exc:
                self.close()
                if attempt == 2:
                    raise ConnectionLost(f"lost the SSH connection to {self.endpoint.hostname}: {exc}") from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- commands ------------------------------------------------------------------------------
    def command_line(self, argv: Sequence[str], *, sudo: bool | None = None) -> str:
        """The exact line sent to the remote shell: every argument quoted.

        >>> Connection("h", user="root", ssh_config=Path("/x")).command_line(["echo", "a b", "$HOME"])
        "echo 'a b' '$HOME'"
        """
        if isinstance(argv, str):
            raise TypeError("run() takes a list of arguments, not a string: use ['sh', '-c', script] for a script")
        line = shlex.join(argv)
        if self.sudo if sudo is None else sudo:
            line = "sudo -n -- " + line
        return line

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | bytes | None = None,
        check: bool = True,
        sudo: bool | None = None,
        timeout: float | None = COMMAND_TIMEOUT,
        on_output: Callable[[str], None] | None = None,
        pty: bool = False,
        max_output: int = MAX_OUTPUT,
    ) -> Result:
        """Run ``argv`` on the host; raise :class:`CommandError` when it fails and ``check`` is true.

        A host is not trusted to end its commands or to print little: past ``timeout`` seconds (None: no
        limit, for the few commands that say why) or ``max_output`` bytes of stdout and stderr, the channel is
        closed and :class:`~mailkit.core.errors.MailkitError` raised.

        ``on_output`` receives each complete line of stdout as it arrives (for progress displays).
        ``pty`` runs it on a terminal (stderr then arrives merged into stdout): some tools, like
        ``postfix check`` before 3.9, print their errors only to a terminal, otherwise only to syslog.
        """
        line = self.command_line(argv, sudo=sudo)
        channel = self._open_channel()
        try:
            if pty:
                channel.get_pty(term="dumb", width=200)
            channel.exec_command(line)
            if input is not None:
                _send_all(channel, input.encode() if isinstance(input, str) else input)
            channel.shutdown_write()
            out, err = _drain(channel, timeout, on_output, max_output)
            exited = channel.recv_exit_status()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            # Not retried: the command may have started on the host.
            self.close()
            raise ConnectionLost(f"lost the SSH connection to {self.endpoint.hostname} during {line!r}: {exc}") from exc
        finally:
            self._close_channel(channel)
        if exited == -1 and not self._alive():
            self.close()
            raise ConnectionLost(f"lost the SSH connection to {self.endpoint.hostname} during {line!r}")
        result = Result(line, out.decode(errors="replace"), err.decode(errors="replace"), exited)
        if check and result.failed:
            raise CommandError(result)
        return result

    def _close_channel(self, channel: paramiko.Channel) -> None:
        """Close ``channel``; when even that fails the connection is gone: drop it (the next command reconnects).

        Never raises, so the error that ended the command (too much output, a timeout) is the one reported.
        """
        try:
            channel.close()
        except (paramiko.SSHException, EOFError, OSError):
            self.close()

    def start(self, argv: Sequence[str], *, sudo: bool | None = None) -> RemoteProcess:
        """Start ``argv`` without waiting for it; the caller reads it and closes it (which ends it)."""
        line = self.command_line(argv, sudo=sudo)
        channel = self._open_channel()
        try:
            channel.exec_command(line)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            channel.close()
            self.close()
            raise ConnectionLost(f"lost the SSH connection to {self.endpoint.hostname} during {line!r}: {exc}") from exc
        return RemoteProcess(channel)

    # -- files ---------------------------------------------------------------------------------
    @property
    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None or not self._alive():
            self._sftp = self.client.open_sftp()
            self.channels_opened += 1
        return self._sftp

    def read(self, path: str) -> bytes:
        """The content of a remote file (through sudo when not logged in as root)."""
        if self.sudo:
            return self.run(["cat", "--", path]).stdout.encode()
        with self.sftp.open(path, "rb") as remote:
            return remote.read()

    def write(self, path: str, data: str | bytes, *, mode: int | None = None) -> None:
        """Replace a remote file's content (not atomic: the apply engine adds backup and rename)."""
        payload = data.encode() if isinstance(data, str) else data
        if self.sudo:
            self.run(["sh", "-c", 'cat > "$1"', "sh", path], input=payload)
            if mode is not None:
                self.run(["chmod", f"{mode:o}", "--", path])
            return
        with self.sftp.open(path, "wb") as remote:
            remote.write(payload)
        if mode is not None:
            self.sftp.chmod(path, mode)


class RemoteProcess:
    """A command running on the host, read as it goes; closing the channel ends it."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel

    def read(self, timeout: float) -> bytes:
        """What it printed since the last read, waiting up to ``timeout`` for something."""
        if not self.channel.recv_ready():
            select.select([self.channel], [], [], timeout)
        return self.channel.recv(4096) if self.channel.recv_ready() else b""

    def exit_code(self) -> int | None:
        """Its exit status once it has ended (and printed everything), else None."""
        if self.channel.exit_status_ready() and not self.channel.recv_ready():
            return self.channel.recv_exit_status()
        return None

    def close(self) -> None:
        self.channel.close()


def _drain(
    channel: paramiko.Channel,
    timeout: float | None,
    on_output: Callable[[str], None] | None = None,
    max_output: int = MAX_OUTPUT,
) -> tuple[bytes, bytes]:
    """Read stdout and stderr together until the command closes them (neither can block the other), up to
    ``max_output`` bytes in all and ``timeout`` seconds."""
    out, err = bytearray(), bytearray()
    reported = 0
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        progressed = False
        while channel.recv_ready():
            out += channel.recv(65536)
            progressed = True
        if on_output is not None:
            end = out.rfind(b"\n") + 1
            for line in bytes(out[reported:end]).decode(errors="replace").splitlines():
                on_output(line)
            reported = max(reported, end)
        while channel.recv_stderr_ready():
            err += channel.recv_stderr(65536)
            progressed = True
        if (
            channel.exit_status_ready()
            and channel.eof_received
            and not (channel.recv_ready() or channel.recv_stderr_ready())
        ):
            return bytes(out), bytes(err)
        if channel.closed:
            return bytes(out), bytes(err)
        if len(out) + len(err) > max_output:
            raise MailkitError(f"the command printed more than {max_output} bytes: stopped reading it")
        if deadline is not None and time.monotonic() > deadline:
            raise MailkitError(f"command timed out after {timeout} s")
        if not progressed:
            select.select([channel], [], [], 0.1)
