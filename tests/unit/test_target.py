"""Where a notebook's target comes from, and what counts as a valid destination."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailkit.errors import UsageError
from mailkit.ssh import resolve_endpoint
from mailkit.target import resolve_target


def test_default_is_the_lab_mail_host() -> None:
    assert resolve_target(None, env={}) == "lab:mail"


def test_environment_overrides_default_and_argument_overrides_environment() -> None:
    env = {"MAILKIT_HOST": "admin@mx.example.net"}
    assert resolve_target(None, env=env) == "admin@mx.example.net"
    assert resolve_target("lab:outside", env=env) == "lab:outside"


@pytest.mark.parametrize(
    "bad",
    ["-oProxyCommand=sh", "host name", "user@", "a@b@c", "mx.example.net\n", "lab:nope", "host;reboot", "$(id)"],
)
def test_bad_destinations_are_refused(bad: str) -> None:
    with pytest.raises(UsageError):
        resolve_target(bad, env={})


def test_ssh_config_alias_is_honoured(tmp_path: Path) -> None:
    key = tmp_path / "key"
    known = tmp_path / "known"
    config = tmp_path / "config"
    config.write_text(
        f"Host mx\n  HostName 198.51.100.25\n  User admin\n  Port 2222\n  IdentityFile {key}\n"
        f"  UserKnownHostsFile {known}\n  IdentitiesOnly yes\n"
    )
    e = resolve_endpoint("mx", ssh_config=config)
    assert (e.hostname, e.user, e.port) == ("198.51.100.25", "admin", 2222)
    assert e.key_files == (key,)
    assert e.known_hosts == (known,)
    assert e.identities_only


def test_explicit_arguments_win_over_ssh_config(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Host mx\n  HostName 198.51.100.25\n  User admin\n")
    e = resolve_endpoint("root@mx", port=2200, ssh_config=config)
    assert (e.hostname, e.user, e.port) == ("198.51.100.25", "root", 2200)


def test_unknown_host_falls_back_to_defaults(tmp_path: Path) -> None:
    e = resolve_endpoint("mx.example.net", user="root", ssh_config=tmp_path / "none")
    assert (e.hostname, e.port) == ("mx.example.net", 22)
    assert e.known_hosts[0].name == "known_hosts"
