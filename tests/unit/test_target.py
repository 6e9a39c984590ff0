"""Where a notebook's target comes from, and what counts as a valid destination."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailkit.core.errors import UsageError
from mailkit.core.ssh import resolve_endpoint
from mailkit.server.target import resolve_target


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


# -- the target value: own server vs lab ------------------------------------------------------------------------
def test_own_server_target_knows_what_differs_from_the_lab() -> None:
    from mailkit.server.target import PUBLIC_BLOCKLISTS, target_of

    server = target_of("admin@mail.example.net", env={"MAILKIT_OUTSIDE": "probe.example.net"})
    assert server.destination == "admin@mail.example.net"
    assert server.outside_name == "probe.example.net"
    assert server.blocklists == PUBLIC_BLOCKLISTS and not server.offline
    assert server.receiver(None) is None and server.senders is None and not server.demos
    assert server.issue_certificate("mail.example.net") == (None, None)
    assert "mailkit headers" in server.without("receiver")


def test_a_server_without_a_route_to_the_internet_says_so_in_the_environment() -> None:
    from mailkit.server.target import target_of

    assert target_of("admin@mail.example.net", env={"MAILKIT_OFFLINE": "yes"}).offline
    assert not target_of("admin@mail.example.net", env={"MAILKIT_OFFLINE": "no"}).offline
    with pytest.raises(UsageError, match="MAILKIT_OFFLINE"):
        target_of("admin@mail.example.net", env={"MAILKIT_OFFLINE": "maybe"})


def test_the_mail_server_greeted_to_see_port_25_open_is_gmails_unless_the_environment_names_another() -> None:
    from mailkit.core.values import ValueRejected
    from mailkit.server.target import target_of

    assert target_of("admin@mail.example.net", env={}).foreign_exchanger == "gmail-smtp-in.l.google.com"
    named = target_of("admin@mail.example.net", env={"MAILKIT_EXCHANGER": "mx.example.net"})
    assert named.foreign_exchanger == "mx.example.net"
    with pytest.raises(ValueRejected, match=r"MAILKIT_EXCHANGER: 'mx\.example\.net; reboot' is not a valid host name"):
        target_of("admin@mail.example.net", env={"MAILKIT_EXCHANGER": "mx.example.net; reboot"})


def test_the_outside_checks_never_run_through_sudo() -> None:
    """An ordinary account on the outside host is enough (security review, finding 9): its connection never asks
    for ``sudo``, whoever logs in."""
    from mailkit.server.target import target_of

    server = target_of("admin@mail.example.net", env={"MAILKIT_OUTSIDE": "student01@probe.example.net"})
    outside = server.outside()  # nothing is opened until a command runs
    assert outside.endpoint.user == "student01" and not outside.sudo
    assert not outside.command_line(["swaks", "--server", "mail.example.net"]).startswith("sudo")


def test_lab_target_plays_each_part_the_lab_way() -> None:
    from mailkit.lab.lab_target import LabTarget
    from mailkit.server.target import target_of

    lab = target_of("lab:mail", env={})
    assert isinstance(lab, LabTarget)
    assert (lab.outside_name, lab.nameserver, lab.blocklists) == ("lab:outside", "198.51.100.53", ("bl.example.net*3",))
    assert lab.senders is not None and lab.senders.blocklist == "bl.example.net"
    assert lab.offline and lab.demos


def test_the_labs_demos_are_skipped_when_the_run_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Issue 22: the optional demo is optional in the headless run too (``guide run --no-demos``)."""
    from click.testing import CliRunner

    import mailkit.guide.runner
    import mailkit.lab.lab
    from mailkit.cli import main
    from mailkit.guide.runner import GuideRun
    from mailkit.server.target import DEMOS_ENV, target_of

    monkeypatch.setenv(DEMOS_ENV, "no")
    assert not target_of("lab:mail", env={}).demos
    monkeypatch.setenv(DEMOS_ENV, "perhaps")
    with pytest.raises(UsageError, match="say yes or no"):
        _ = target_of("lab:mail", env={}).demos
    monkeypatch.delenv(DEMOS_ENV)
    asked: list[dict[str, str]] = []
    monkeypatch.setattr(mailkit.lab.lab, "prepare_lab", lambda *_a, **_k: None)
    monkeypatch.setattr(mailkit.lab.lab, "check_release", lambda release: release)
    monkeypatch.setattr(
        mailkit.guide.runner, "run_guide", lambda *_a, environ, **_k: asked.append(environ) or GuideRun([], [], {})
    )
    for flag, wanted in (("--no-demos", {DEMOS_ENV: "no"}), ("--demos", {DEMOS_ENV: "yes"}), (None, {})):
        argv = ["guide", "run", "--parts", "4", "--output", str(tmp_path), *([flag] if flag else [])]
        result = CliRunner().invoke(main, argv)
        assert result.exit_code == 0, result.output
        assert asked.pop() == wanted, flag


def test_outside_and_nameserver_are_validated() -> None:
    from mailkit.core.values import ValueRejected
    from mailkit.server.target import target_of

    with pytest.raises(UsageError):
        target_of("admin@mail.example.net", outside="-oProxyCommand=sh", env={})
    with pytest.raises(ValueRejected, match="NAMESERVER"):
        target_of("admin@mail.example.net", nameserver="ns.example.net; id", env={})
    with pytest.raises(UsageError, match="OUTSIDE"):
        target_of("admin@mail.example.net", env={}).outside()


def test_only_the_target_module_tells_the_lab_apart() -> None:
    """The lab is one implementation of a target: no prefix tests elsewhere (imports: test_architecture.py)."""
    import re

    package = Path(__file__).resolve().parents[2] / "mailkit"
    prefix_tests = [
        str(p.relative_to(package))
        for p in package.rglob("*.py")
        if 'startswith("lab:")' in p.read_text() and p.relative_to(package) != Path("server/target.py")
    ]
    assert prefix_tests == []
    imports_lab = re.compile(r"^\s*(from mailkit\.lab\b|from mailkit import lab\b|import mailkit\.lab\b)", re.M)
    target_py = (package / "server" / "target.py").read_text()
    assert not imports_lab.search(target_py), "target.py finds the lab by KINDS only"


# -- publishing the registrar's way -----------------------------------------------------------------------------
def test_publishing_hands_zone_text_to_the_registrar_and_waits_for_the_resolver(tmp_path: Path) -> None:
    import sys

    from mailkit.domain.records import RecordSet, txt
    from mailkit.server.target import Published, target_of

    zone: dict[tuple[str, str], tuple[str, ...]] = {}
    received = tmp_path / "received.txt"
    registrar = f"{sys.executable} -c 'import sys; open(sys.argv[1], \"w\").write(sys.stdin.read())' {received}"
    calls = {"n": 0}

    def lookup(name: str, rtype: str) -> tuple[str, ...]:
        calls["n"] += 1
        if received.exists() and calls["n"] > 3:  # the resolver sees it a little after the registrar took it
            for line in received.read_text().splitlines():
                if not line.startswith(";"):
                    owner, _, _, kind, value = line.split(" ", 4)
                    zone[(owner.rstrip("."), kind)] = (value,)
        return zone.get((name, rtype), ())

    server = target_of("admin@mail.example.net", env={"MAILKIT_REGISTRAR": registrar})
    import dataclasses

    server = dataclasses.replace(server, wait_for_dns=10)
    spf = RecordSet("example.net", "TXT", (txt("v=spf1 mx ~all"),))
    done = server.publish([spf], lookup)
    assert isinstance(done, Published) and done.changed and done.waited is not None
    assert received.read_text() == 'example.net. 300 IN TXT "v=spf1 mx ~all"\n'
    again = server.publish([spf], lookup)
    assert isinstance(again, Published) and not again.changed, "published records are no change"


def test_a_record_the_resolver_never_answers_is_an_error_naming_it() -> None:
    import dataclasses

    from mailkit.core.errors import MailkitError
    from mailkit.domain.records import RecordSet, txt
    from mailkit.server.target import target_of

    server = dataclasses.replace(target_of("mail.example.net", env={"MAILKIT_REGISTRAR": "true"}), wait_for_dns=0.5)
    with pytest.raises(MailkitError, match=r"TXT _dmarc\.example\.net"):
        server.publish([RecordSet("_dmarc.example.net", "TXT", (txt("v=DMARC1; p=none"),))], lambda n, t: ())


def test_a_failing_registrar_command_is_an_error() -> None:
    import dataclasses

    from mailkit.core.errors import MailkitError
    from mailkit.domain.records import RecordSet, txt
    from mailkit.server.target import target_of

    server = dataclasses.replace(target_of("mail.example.net", env={"MAILKIT_REGISTRAR": "false"}), wait_for_dns=1)
    with pytest.raises(MailkitError, match="registrar command 'false' exited 1"):
        server.publish([RecordSet("example.net", "TXT", (txt("v=spf1 -all"),))], lambda n, t: ())


# -- the backup host's key -----------------------------------------------------------------------------------------
def test_the_backup_line_goes_to_the_backup_hosts_command_or_is_shown_to_paste(tmp_path: Path) -> None:
    import sys

    from mailkit.core.errors import MailkitError
    from mailkit.core.values import Hostname
    from mailkit.server.backup_space import BackupSpace
    from mailkit.server.target import target_of

    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIClnkdY0ORW99nEM6kMP/5ZtzYiwdyTakgs3wzLbZEh3"
    space = BackupSpace(Hostname("backup.example.net"), "borg", "mail.example.org", key)
    line = space.authorized_line(key, "mail.example.org")
    received = tmp_path / "authorized_keys"
    command = f"{sys.executable} -c 'import sys; open(sys.argv[1], \"a\").write(sys.stdin.read())' {received}"
    server = target_of("admin@mail.example.org", env={"MAILKIT_BACKUP_AUTHORIZE": command})
    said = server.authorize_backup_key(None, space, line)
    assert received.read_text() == line + "\n" and "MAILKIT_BACKUP_AUTHORIZE" in said and key not in said
    by_hand = target_of("admin@mail.example.org", env={}).authorize_backup_key(None, space, line)
    assert by_hand.endswith("\n" + line) and "authorized_keys of borg at backup.example.net" in by_hand
    failing = target_of("admin@mail.example.org", env={"MAILKIT_BACKUP_AUTHORIZE": "sh -c 'echo denied >&2; exit 3'"})
    with pytest.raises(MailkitError, match="the backup host's command 'sh' exited 3: denied"):
        failing.authorize_backup_key(None, space, line)


# -- passwords from a file --------------------------------------------------------------------------------------
def test_passwords_file_must_be_private_complete_and_is_never_shown(tmp_path: Path) -> None:
    from mailkit.server.target import read_passwords_file

    path = tmp_path / "passwords"
    path.write_text("ann@example.net s3cret-$(id)'\"\n# a comment\n\nbob@example.net other pass phrase\n")
    path.chmod(0o644)
    with pytest.raises(UsageError, match="can be read by others"):
        read_passwords_file(path, ["ann@example.net"])
    path.chmod(0o600)
    found = read_passwords_file(path, ["ann@example.net", "bob@example.net"])
    assert found["ann@example.net"].reveal() == "s3cret-$(id)'\"", "kept verbatim"
    assert found["bob@example.net"].reveal() == "other pass phrase"
    with pytest.raises(UsageError, match=r"no password for cid@example\.net") as error:
        read_passwords_file(path, ["cid@example.net"])
    assert "s3cret" not in str(error.value)
    path.write_text("ann@example.net\n")
    with pytest.raises(UsageError, match="line 1: not 'address password'"):
        read_passwords_file(path, ["ann@example.net"])


def test_without_a_terminal_or_a_passwords_file_the_error_says_what_to_give(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from mailkit.server.target import target_of

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(UsageError, match="give a passwords file"):
        target_of("admin@mail.example.net", env={}).passwords(["ann@example.net"])


def test_a_passwords_file_behind_a_symlink_is_refused(tmp_path: Path) -> None:
    from mailkit.server.target import read_passwords_file

    real = tmp_path / "real"
    real.write_text("ann@example.net a long secret phrase\n")
    real.chmod(0o600)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(UsageError, match="it is a symlink"):
        read_passwords_file(link, ["ann@example.net"])
    with pytest.raises(UsageError, match="not a regular file"):
        read_passwords_file(tmp_path, ["ann@example.net"])
    assert read_passwords_file(real, ["ann@example.net"])["ann@example.net"].reveal() == "a long secret phrase"


def test_a_passwords_file_that_is_a_pipe_is_refused_at_once(tmp_path: Path) -> None:
    """A FIFO named as the passwords file would block the read for ever: it is refused as not a regular file."""
    import os
    import threading

    from mailkit.server.target import read_passwords_file

    fifo = tmp_path / "passwords"
    os.mkfifo(fifo, 0o600)
    caught: list[BaseException] = []

    def read() -> None:
        try:
            read_passwords_file(fifo, ["ann@example.net"])
        except UsageError as exc:
            caught.append(exc)

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(5)
    assert caught and "not a regular file" in str(caught[0])


def test_the_trust_anchor_is_ianas_unless_the_environment_names_another_root_key() -> None:
    from mailkit.core.values import ValueRejected
    from mailkit.domain.dnssec import ROOT_ANCHOR
    from mailkit.server.target import target_of

    assert target_of("admin@mail.example.net", env={}).trust_anchor is None  # the checks then start from IANA's
    own = ". IN DS 4242 13 2 " + "ab" * 32
    server = target_of("admin@mail.example.net", env={"MAILKIT_TRUST_ANCHOR": own})
    assert server.trust_anchor == ". IN DS 4242 13 2 " + "AB" * 32 != ROOT_ANCHOR
    with pytest.raises(ValueRejected, match=r"MAILKIT_TRUST_ANCHOR: 'example\.org\. DS 1 8 2 00' is not the root's DS"):
        target_of("admin@mail.example.net", env={"MAILKIT_TRUST_ANCHOR": "example.org. DS 1 8 2 00"})
