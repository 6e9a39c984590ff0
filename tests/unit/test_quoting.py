"""Every argument reaches the remote shell as one literal word; sudo is added only where needed."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from mailkit.core.ssh import Connection

NASTY = [
    "plain",
    "two words",
    "it's",
    '"double"',
    "$(reboot)",
    "`id`",
    "a;b",
    "a&&b",
    "x|y",
    "new\nline",
    "*",
    "~root",
    "--option",
    "",
    "tab\there",
    "back\\slash",
    "ü-non-ascii",
]


def _conn(user: str = "root", sudo: bool | None = None) -> Connection:
    return Connection("mail.example.org", user=user, ssh_config=Path("/nonexistent"), sudo=sudo)


@pytest.mark.parametrize("arg", NASTY)
def test_each_argument_is_one_literal_word(arg: str) -> None:
    line = _conn().command_line(["printf", "%s", arg])
    assert shlex.split(line) == ["printf", "%s", arg]


def test_all_arguments_survive_together() -> None:
    line = _conn().command_line(NASTY)
    assert shlex.split(line) == NASTY


def test_a_string_command_is_refused() -> None:
    with pytest.raises(TypeError, match="list of arguments"):
        _conn().command_line("rm -rf /tmp/x")  # type: ignore[arg-type]


def test_sudo_is_added_for_a_non_root_login_only() -> None:
    assert _conn("root").command_line(["id"]) == "id"
    assert _conn("admin").command_line(["id"]) == "sudo -n -- id"
    assert _conn("admin", sudo=False).command_line(["id"]) == "id"
    assert _conn("admin").command_line(["id"], sudo=False) == "id"


def test_connection_is_lazy() -> None:
    conn = _conn()
    assert conn._client is None
    assert repr(conn) == "Connection(root@mail.example.org:22)"
