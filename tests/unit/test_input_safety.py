"""Input and lab safety: what a user types is refused fast and clearly, and secrets never show."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable

import pytest

from mailkit.core.redact import redact
from mailkit.core.values import Domain, Password, RemotePath, ValueRejected, setting_value
from mailkit.lab.machine import pid_is


def _fastest(judge: Callable[[], object], tries: int = 5) -> float:
    """The best of a few timings: a busy machine may pause one, never all (quadratic time took 36 s)."""
    best = float("inf")
    for _ in range(tries):
        started = time.perf_counter()
        judge()
        best = min(best, time.perf_counter() - started)
    return best


def _refused(path: str) -> None:
    with pytest.raises(ValueRejected):
        RemotePath(path)


@pytest.mark.parametrize("tail", [" ", "!", "/ ", "é"])
def test_a_long_path_is_judged_in_linear_time(tail: str) -> None:
    path = ("/" + "a/" * 2047 + tail)[:4096]
    assert _fastest(lambda: _refused(path)) < 0.01
    accepted = "/" + "a/" * 2047 + "b"
    assert RemotePath(accepted) == accepted and _fastest(lambda: RemotePath(accepted)) < 0.01


def test_non_ascii_domains_are_refused_with_their_idna_2008_form_never_rewritten() -> None:
    with pytest.raises(ValueRejected) as caught:
        Domain("straße.de", field="DOMAIN")
    message = str(caught.value)
    assert "IDNA 2008" in message and "xn--strae-oqa.de" in message and "strasse.de" not in message
    assert Domain("xn--strae-oqa.de") == "xn--strae-oqa.de"


@pytest.mark.parametrize("char", ["\n", "\r", "\0", "\x1b", "\x7f", "\u2028", "\u2029", "\x85"])
def test_control_characters_and_separators_are_refused(char: str) -> None:
    with pytest.raises(ValueRejected, match="contains"):
        Password(f"a long password{char}tail")
    with pytest.raises(ValueRejected, match="contains"):
        setting_value(f"value{char}more")
    with pytest.raises(ValueRejected) as caught:
        Password(f"a long password{char}tail")
    assert "a long password" not in str(caught.value), "a refused password is not shown either"


def test_redaction_covers_every_scheme_and_sasl_passwd_lines() -> None:
    for line in ("u:{PLAIN}hunter2hunter:", "u:{SHA256.b64}c2VjcmV0:", "u:{plain}lowercase:"):
        assert "<redacted>" in redact(line) and line.split("}")[1].split(":")[0] not in redact(line)
    for line in ("[smtp.example.net]:587 user@example.org:s3cret-pass", "+smtp.example.net:587 u:s3cret-pass"):
        assert "s3cret-pass" not in redact(line)
    kept = "alice@example.org lmtp:unix:private/dovecot-lmtp\n+virtual_transport = lmtp:unix:private/x\n"
    assert redact(kept) == kept, "maps and settings that merely contain a colon stay readable"


def test_the_lab_signals_only_its_own_processes() -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        deadline = time.monotonic() + 10  # the child is python until it has exec'd sleep (slow on a busy machine)
        while not pid_is(sleeper.pid, "sleep") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pid_is(sleeper.pid, "sleep")
        assert not pid_is(sleeper.pid, "systemd-nspawn"), "a reused PID is not the lab's host"
        assert not pid_is(os.getpid(), "apt-cacher-ng")
        assert not pid_is(None, "sleep")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not pid_is(sleeper.pid, "sleep")


def test_a_real_password_never_goes_out_without_tls() -> None:
    from mailkit.clients.remote_client import run_client, throwaway_login
    from mailkit.core.errors import UsageError

    class Untouchable:
        def run(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("nothing may reach the host")

    request = {"protocol": "imap", "host": "mail.example.org", "port": 143, "mode": "plain"}
    with pytest.raises(UsageError, match="never sent without TLS"):
        run_client(Untouchable(), {**request, "user": "alice@example.org", "password": "alice's password"})  # type: ignore[arg-type]
    probe = throwaway_login("example.org")
    assert probe["user"] != throwaway_login("example.org")["user"], "a fresh throwaway user each time"
    # The script that runs on the other host refuses the same: against a loopback IMAP server it
    # reads the greeting and capabilities and sends no LOGIN.
    heard = _imap_conversation({**request, "user": "alice@example.org", "password": "alice's password"})
    assert not any(line.split()[1:2] == ["LOGIN"] for line in heard), heard
    assert any(line.split()[1:2] == ["LOGIN"] for line in _imap_conversation({**request, **probe}))


def _imap_conversation(request: dict[str, object]) -> list[str]:
    """Run the outside host's client script here against a loopback IMAP server; return what it sent."""
    import json
    import socket
    import sys
    import threading

    from mailkit.clients.remote_client import CLIENT

    server = socket.create_server(("127.0.0.1", 0))
    heard: list[str] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn, conn.makefile("rwb") as stream:
            stream.write(b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n")
            stream.flush()
            for raw in stream:
                line = raw.decode().strip()
                heard.append(line)
                tag, command = [*line.split(), ""][:2]
                if command == "CAPABILITY":
                    stream.write(b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n")
                answer = "NO [PRIVACYREQUIRED] no" if command == "LOGIN" else "OK done"
                stream.write(f"{tag} {answer}\r\n".encode())
                stream.flush()
                if command in ("LOGIN", "LOGOUT"):
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    request = {**request, "host": "127.0.0.1", "port": server.getsockname()[1]}
    subprocess.run([sys.executable, "-c", CLIENT], input=json.dumps(request).encode(), timeout=20, check=False)
    thread.join(5)
    server.close()
    return heard


def test_progress_lines_are_printed_as_text_not_markup() -> None:
    """Security review, finding 12: a streamed line with '[/x]' raised MarkupError mid-stream."""
    import io

    from rich.console import Console

    from mailkit.cli import _progress

    out = io.StringIO()
    show = _progress(Console(file=out, no_color=True, width=200))
    show("Get:1 http://deb.debian.org [/x] [bold]not bold[/bold] [link=javascript:x]y")
    assert out.getvalue() == "Get:1 http://deb.debian.org [/x] [bold]not bold[/bold] [link=javascript:x]y\n"
