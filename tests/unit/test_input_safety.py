"""Input and lab safety: what a user types is refused fast and clearly, and secrets never show."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from mailkit.lab.machine import pid_is
from mailkit.redact import redact
from mailkit.values import Domain, Password, RemotePath, ValueRejected, setting_value


@pytest.mark.parametrize("tail", [" ", "!", "/ ", "é"])
def test_a_long_path_is_judged_in_linear_time(tail: str) -> None:
    path = "/" + "a/" * 2047 + tail
    started = time.perf_counter()
    with pytest.raises(ValueRejected):
        RemotePath(path[:4096])
    assert time.perf_counter() - started < 0.01
    started = time.perf_counter()
    assert RemotePath("/" + "a/" * 2047 + "b") and time.perf_counter() - started < 0.01


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
        assert pid_is(sleeper.pid, "sleep")
        assert not pid_is(sleeper.pid, "systemd-nspawn"), "a reused PID is not the lab's host"
        assert not pid_is(os.getpid(), "apt-cacher-ng")
        assert not pid_is(None, "sleep")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not pid_is(sleeper.pid, "sleep")
