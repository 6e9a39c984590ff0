"""A params file for a headless run on your own server: each bad value a one-line error naming it, before any login."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest

from mailkit.core.errors import UsageError
from mailkit.guide.ownserver import check_login, prepare_own_server, sudo_refused
from mailkit.guide.params import load, validate

GOOD = {"DOMAIN": "example.net", "HOSTNAME": "mx.example.net", "MAILBOXES": ["ann@example.net"],
        "DMARC_POLICY": "quarantine", "BLOCKLISTS": ["zen.spamhaus.org=127.0.0.[2..11]*3"]}  # fmt: skip


def test_a_good_file_in_json_or_yaml_gives_the_notebooks_values(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(json.dumps(GOOD))
    (tmp_path / "p.yaml").write_text(
        "DOMAIN: example.net\nHOSTNAME: mx.example.net\nMAILBOXES: [ann@example.net]\nDMARC_POLICY: quarantine\n"
        "BLOCKLISTS: ['zen.spamhaus.org=127.0.0.[2..11]*3']\n"
    )
    expected = {**GOOD, "OTHER_DOMAINS": [], "ALIASES": {}}
    assert load(tmp_path / "p.json") == expected
    assert load(tmp_path / "p.yaml") == expected, "a DOMAIN of your own comes without the lab's second domain"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"DOMIAN": "example.net"}, "unknown name 'DOMIAN'"),
        ({"DOMAIN": "example.net\nmydestination = evil"}, "DOMAIN"),
        ({"HOSTNAME": "mx.example.net\n"}, "HOSTNAME"),
        ({"MAILBOXES": ["ann"]}, "MAILBOXES"),
        ({"MAILBOXES": ["ann@other.example"]}, "MAILBOXES: ann@other.example is not in example.net"),
        ({"MAILBOXES": "ann@example.net"}, "MAILBOXES: 'ann@example.net' must be a list"),
        ({"ALIASES": {"info@example.net": "ann@example.net"}}, "ALIASES"),
        ({"DMARC_POLICY": "strict"}, "DMARC_POLICY"),
        ({"SELECTOR": "2026 11"}, "SELECTOR"),
        ({"BLOCKLISTS": ["; rm -rf /*3"]}, "BLOCKLISTS"),
        ({"NAMESERVER": "ns.example.net"}, "NAMESERVER"),
        ({"CERT_FILE": "../etc/shadow"}, "CERT_FILE"),
        ({"PASSWORDS": {"ann@example.net": "a long secret phrase"}}, "passwords never go in a params file"),
        ({"TARGET": "root@example.net"}, "--host"),
        ({"MAILBOX": "ann"}, "MAILBOX"),
        ({"OLD_USER": "ann"}, "OLD_USER"),
        ({"OLD_HOST": "imap.gmail.com;reboot"}, "OLD_HOST"),
        ({"BACKUP_HOST": "-oProxyCommand=sh"}, "BACKUP_HOST"),
        ({"BACKUP_USER": "borg;sh"}, "BACKUP_USER"),
        ({"BACKUP_PATH": "../etc"}, "BACKUP_PATH"),
        ({"BACKUP_PORT": 0}, "BACKUP_PORT"),
        ({"BACKUP_HOST_KEY": "ssh-ed25519 AAAA"}, "BACKUP_HOST_KEY"),
        ({"BACKUP_AT": "daily; ExecStart=/bin/sh"}, "BACKUP_AT"),
    ],
)
def test_each_bad_value_is_one_line_naming_it(change: dict[str, object], named: str) -> None:
    with pytest.raises(UsageError) as error:
        validate({**GOOD, **change})
    message = str(error.value)
    assert named in message and "\n" not in message
    assert "a long secret phrase" not in message


def test_one_file_carries_the_moving_in_and_backup_chapters_too() -> None:
    chapters = {
        "MAILBOX": "ann@example.net", "OLD_HOST": "imap.gmail.com", "OLD_USER": "ann@gmail.com",
        "BACKUP_HOST": "u1.your-storagebox.example.net", "BACKUP_USER": "u1", "BACKUP_PORT": 23,
        "BACKUP_PATH": "mail", "BACKUP_AT": "daily",
        "BACKUP_HOST_KEY": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIClnkdY0ORW99nEM6kMP/5ZtzYiwdyTakgs3wzLbZEh3 box",
    }  # fmt: skip
    key = chapters["BACKUP_HOST_KEY"].removesuffix(" box")  # the comment is not the key
    assert validate({**GOOD, **chapters}) == {
        **GOOD,
        **chapters,
        "BACKUP_HOST_KEY": key,
        "OTHER_DOMAINS": [],
        "ALIASES": {},
    }


def test_files_that_are_not_params_are_refused(tmp_path: Path) -> None:
    cases = {"list.json": "[1, 2]", "broken.yaml": "DOMAIN: [", "big.json": " " * 70_000, "p.toml": "DOMAIN = 1"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(UsageError, match="params file"):
            load(tmp_path / name)
    with pytest.raises(UsageError, match="cannot read"):
        load(tmp_path / "missing.json")


def test_sudo_refusals_are_recognised() -> None:
    assert sudo_refused("sudo: a password is required\n")
    assert sudo_refused("ann is not in the sudoers file.  This incident will be reported.")
    assert not sudo_refused("true: command not found")


class _Refusing:
    """A server whose sudo wants a password: the login works, the first command is refused."""

    sudo = True

    class endpoint:
        user = "ann"

    ran: ClassVar[list[list[str]]] = []

    def __enter__(self) -> _Refusing:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def run(self, argv: list[str], **_: object) -> object:
        from mailkit.core.result import Result

        self.ran.append(argv)
        return Result(" ".join(argv), "", "sudo: a password is required\n", 1)


def test_a_host_that_refuses_sudo_n_is_a_one_line_error_and_nothing_else_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from mailkit.server import target as target_module

    monkeypatch.setattr(target_module.Target, "connect", lambda self: _Refusing())
    with pytest.raises(UsageError) as error:
        check_login("ann@mail.example.net")
    assert "sudo -n' refused" in str(error.value) and "NOPASSWD" in str(error.value)
    assert "\n" not in str(error.value)
    assert _Refusing.ran == [["true"]], "only 'true' ran"


def test_bad_params_stop_before_any_login(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mailkit.server import target as target_module

    def no_login(self: object) -> object:
        raise AssertionError("logged in before the values were checked")

    monkeypatch.setattr(target_module.Target, "connect", no_login)
    params = tmp_path / "p.json"
    params.write_text(json.dumps({**GOOD, "MAILBOXES": ["ann@"]}))
    with pytest.raises(UsageError, match="MAILBOXES"), prepare_own_server("ann@mail.example.net", params, None, None):
        pass
    passwords = tmp_path / "pw"
    passwords.write_text("ann@example.net a long secret phrase\n")
    passwords.chmod(0o640)
    params.write_text(json.dumps(GOOD))
    with (
        pytest.raises(UsageError, match="read by others"),
        prepare_own_server("ann@mail.example.net", params, passwords, None),
    ):
        pass
    with pytest.raises(UsageError, match="leave --host out"), prepare_own_server("lab:mail", None, None, None):
        pass
    monkeypatch.setenv("MAILKIT_PASSWORDS_FILE", str(passwords))  # the notebooks' setting counts as --passwords
    with (
        pytest.raises(UsageError, match="read by others"),
        prepare_own_server("ann@mail.example.net", params, None, None),
    ):
        pass
