"""The engine's own logic, against a fake host: a local shell over a temporary directory."""

from __future__ import annotations

import base64
import getpass
import grp
import os
import select
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from mailkit.core import engine
from mailkit.core.errors import CommandError, StateConflict
from mailkit.core.facts import (
    FileInfo,
    FileState,
    ListeningPorts,
    PackageVersion,
    PostconfExplicit,
    batch_script,
    gather,
    parse_batch,
)
from mailkit.core.hostlock import TRANSACTION_LOCK, HostLock
from mailkit.core.redact import redact
from mailkit.core.resources import (
    CANDIDATE,
    Directory,
    File,
    LookupTable,
    MasterService,
    Packages,
    Postconf,
    unified_diff,
)
from mailkit.core.result import Result
from mailkit.core.templates import TemplateError, Templates
from mailkit.core.transaction import parse_status, transaction_script

USER = getpass.getuser()
GROUP = grp.getgrgid(os.getgid()).gr_name


class LocalShell:
    """Runs commands here, as a stand-in for a host (for the engine's logic only)."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def run(self, argv, *, input=None, check=True, **_: object) -> Result:
        self.commands.append(list(argv))
        proc = subprocess.run(
            list(argv),
            input=input if isinstance(input, bytes) else (input or "").encode(),
            capture_output=True,
            check=False,
        )
        result = Result(shlex.join(argv), proc.stdout.decode(), proc.stderr.decode(), proc.returncode)
        if check and result.failed:
            raise CommandError(result)
        return result

    def start(self, argv, **_: object) -> LocalProcess:
        self.commands.append(list(argv))
        return LocalProcess(subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE))


class LocalProcess:
    """Stands in for :class:`mailkit.core.ssh.RemoteProcess`."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        os.set_blocking(proc.stdout.fileno(), False)

    def read(self, timeout: float) -> bytes:
        select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.read() or b""

    def exit_code(self) -> int | None:
        return self.proc.poll()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def _file(path: Path, content: str, mode: int = 0o644) -> File:
    return File(str(path), content, owner=USER, group=GROUP, mode=mode)


def test_gather_reads_many_facts_in_one_command(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"line one\n\x00binary\n")
    shell = LocalShell()
    state, absent, version = gather(
        shell, [FileInfo(str(tmp_path / "a")), FileInfo(str(tmp_path / "b")), PackageVersion("no-such-package-mailkit")]
    )
    assert len(shell.commands) == 1
    assert state.content == b"line one\n\x00binary\n" and state.owner == USER
    assert absent.content is None and not absent.exists
    assert version is None


def test_a_file_that_holds_the_known_content_is_not_sent_back(tmp_path: Path) -> None:
    (tmp_path / "same").write_bytes(b"kept\n")
    (tmp_path / "other").write_bytes(b"changed on the host\n")
    shell = LocalShell()
    facts = [FileInfo(str(tmp_path / "same"), known=b"kept\n"), FileInfo(str(tmp_path / "other"), known=b"kept\n")]
    script = batch_script(facts, "--b")
    raw = shell.run(["sh", "-s"], input=script).stdout
    assert raw.count("=same") == 1 and base64.b64encode(b"kept\n").decode() not in raw
    same, other = parse_batch(raw, facts, "--b")
    assert same.content == b"kept\n" and other.content == b"changed on the host\n"


def test_a_file_removed_while_it_is_read_is_absent_not_an_error(tmp_path: Path) -> None:
    """Another apply's transaction removes its pending-reload between `[ -f ]` and `stat` (a concurrent `mailkit add`
    on bookworm failed so in ci53): the reader says absent. A `stat` on PATH that removes the file first plays it."""
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "stat").write_text('#!/bin/sh\nfor a; do f=$a; done\nrm -f -- "$f"\nexit 1\n')
    (shim / "stat").chmod(0o755)
    (tmp_path / "pending-reload").write_text("postfix\n")
    fact = FileInfo(str(tmp_path / "pending-reload"))
    env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"}
    ran = subprocess.run(fact.command(), capture_output=True, text=True, env=env, check=False)
    assert not (tmp_path / "pending-reload").exists(), "the shim removed it in the window"
    assert fact.parse(ran.stdout, ran.returncode).content is None
    kept = tmp_path / "kept"
    kept.write_bytes(b"x\n")
    plain = subprocess.run(FileInfo(str(kept)).command(), capture_output=True, text=True, check=False)
    assert FileInfo(str(kept)).parse(plain.stdout, plain.returncode).content == b"x\n"


def test_batch_output_with_lookalike_boundaries_still_parses() -> None:
    facts = [PostconfExplicit(), ListeningPorts()]
    script = batch_script(facts, "--b")
    assert "postconf -n" in script and "ss -Hltn" in script
    output = (
        "--b 0\nmydomain = example.org\n--b 1 is in a value\n\n--b rc 0\n"
        "--b 1\nLISTEN 0 100 0.0.0.0:25 0.0.0.0:*\n\n--b rc 0\n"
    )
    values = parse_batch(output, facts, "--b")
    assert values[0] == {"mydomain": "example.org"}
    assert values[1] == frozenset({25})


def test_plan_of_unchanged_state_is_empty(tmp_path: Path) -> None:
    target = tmp_path / "main.cf"
    target.write_text("myhostname = mail.example.org\n")
    target.chmod(0o644)
    the_plan = engine.plan(LocalShell(), [_file(target, "myhostname = mail.example.org\n")], state_dir=str(tmp_path))
    assert not the_plan
    assert str(the_plan) == "no change"
    assert "no change" in the_plan._repr_html_()


def test_plan_shows_a_diff_and_changes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "main.cf"
    target.write_text("old\n")
    the_plan = engine.plan(LocalShell(), [_file(target, "new\n")], state_dir=str(tmp_path))
    assert [c.summary for c in the_plan.changes] == [f"update {target}"]
    assert "-old\n+new" in the_plan.changes[0].diff
    assert target.read_text() == "old\n"


def test_mode_only_change_is_planned(tmp_path: Path) -> None:
    target = tmp_path / "passwd"
    target.write_text("same\n")
    target.chmod(0o644)
    the_plan = engine.plan(LocalShell(), [_file(target, "same\n", mode=0o640)], state_dir=str(tmp_path))
    assert the_plan.changes[0].summary.endswith("644 -> " + f"{USER}:{GROUP} 640")


def test_apply_writes_atomically_backs_up_and_converges(tmp_path: Path) -> None:
    state = tmp_path / "state"
    old, new = tmp_path / "old.conf", tmp_path / "new.conf"
    old.write_text("before\n")
    resources = [_file(old, "after\n", 0o600), _file(new, "created\n")]
    shell = LocalShell()
    result = engine.apply(shell, resources, state_dir=str(state))
    assert result.changed and result.reloaded == [] and result.validated == []
    assert old.read_text() == "after\n" and oct(old.stat().st_mode & 0o777) == "0o600"
    assert new.read_text() == "created\n"
    backup = Path(result.backup)
    manifest = (backup / "manifest").read_text().splitlines()
    assert manifest == [f"copy\t1\t{old}", f"absent\t-\t{new}"]
    assert (backup / "1").read_text() == "before\n"
    assert oct(backup.stat().st_mode & 0o777) == "0o700" and oct(state.stat().st_mode & 0o777) == "0o700"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.conf", "old.conf", "state"], "no candidate left"
    assert not (state / "pending-reload").exists()
    again = engine.apply(shell, resources, state_dir=str(state))
    assert not again.changed and str(again) == "no change; nothing reloaded"


class _CreateOnly(File):
    """A file that must not exist yet, as ``mailbox add`` wants its address to be new."""

    def compare(self, values):  # type: ignore[no-untyped-def]
        if values[0].exists:
            raise StateConflict(f"{self.path} exists already")
        return super().compare(values)


def test_apply_judges_the_state_it_read_not_the_state_it_made(tmp_path: Path) -> None:
    made = tmp_path / "new-mailbox"
    shell = LocalShell()
    result = engine.apply(
        shell, [_CreateOnly(str(made), "x\n", owner=USER, group=GROUP)], state_dir=str(tmp_path / "s")
    )
    assert result.changed and made.read_text() == "x\n"
    # read, lock, read again under the lock, one transaction: nothing compares the new state
    assert len(shell.commands) == 4, [c[:3] for c in shell.commands]
    with pytest.raises(StateConflict, match="exists already"):
        engine.plan(shell, [_CreateOnly(str(made), "x\n", owner=USER, group=GROUP)], state_dir=str(tmp_path / "s"))


def test_a_rejected_candidate_changes_nothing_live(tmp_path: Path) -> None:
    state = tmp_path / "state"
    good, checked = tmp_path / "good.conf", tmp_path / "checked.conf"
    good.write_text("before\n")
    refuse = ("sh", "-c", 'grep -q ok "$1" || { echo "no ok in it"; exit 3; }', "sh", CANDIDATE)
    resources = [_file(good, "after\n"), File(str(checked), "bad\n", owner=USER, group=GROUP, check=refuse)]
    with pytest.raises(engine.ApplyError) as caught:
        engine.apply(LocalShell(), resources, state_dir=str(state))
    assert caught.value.restored == [] and caught.value.service == str(checked)
    assert "no ok in it" in str(caught.value) and "nothing went live" in str(caught.value)
    assert good.read_text() == "before\n" and not checked.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.conf", "state"], "candidates are removed"
    assert not (state / "pending-reload").exists()
    fixed = engine.apply(
        LocalShell(), [File(str(checked), "ok\n", owner=USER, group=GROUP, check=refuse)], state_dir=str(state)
    )
    assert fixed.validated == [str(checked)] and checked.read_text() == "ok\n"


def test_a_service_that_does_not_come_back_gets_its_old_files_and_is_restarted(tmp_path: Path) -> None:
    from mailkit.core.services import SERVICES, Service, register

    state, log = tmp_path / "state", tmp_path / "effects"
    conf, extra = tmp_path / "svc.conf", tmp_path / "new.d"
    conf.write_text("old\n")
    # Reload and restart are recorded; "running" needs a unit that does not exist, so it never is.
    record = lambda word: ("sh", "-c", f"echo {word} >> {shlex.quote(str(log))}")  # noqa: E731
    register(Service("fake", "mailkit-no-such-unit", record("reload"), record("restart")))
    try:
        resources = [
            Directory(str(extra), USER, GROUP),
            File(str(conf), "new\n", owner=USER, group=GROUP, service="fake"),
        ]
        with pytest.raises(engine.ApplyError) as caught:
            engine.apply(LocalShell(), resources, state_dir=str(state))
    finally:
        del SERVICES["fake"]
    error = caught.value
    assert error.service == "fake" and "did not come back" in str(error)
    assert sorted(error.restored) == sorted([str(conf), str(extra)])
    assert error.status.down == ["fake"] and "STILL DOWN: fake" in str(error)
    assert conf.read_text() == "old\n" and not extra.exists()
    assert log.read_text().split() == ["reload", "restart"], "restarted on the old files after the restore"
    assert not (state / "pending-reload").exists()


def test_restore_reports_what_it_could_not_put_back() -> None:
    status = parse_status(
        "@@ failed postfix\nbind: in use\n@@ end\n@@ restored /a\n@@ restore-failed /b\n@@ down postfix\n"
    )
    error = engine.ApplyError("postfix", Result("sh", status.output, "", 96), status.restored, status)
    assert "could NOT restore: /b" in str(error) and "STILL DOWN: postfix" in str(error)
    assert status.output == "bind: in use"


def test_incomplete_script_is_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    shell = LocalShell()
    data = f"touch {marker}\n".encode()
    with pytest.raises(CommandError) as caught:
        shell.run(["sh", "-c", engine._RUN_VERIFIED, "sh", "0" * 64], input=data)
    assert caught.value.result.exited == 98
    assert not marker.exists()
    engine.run_script(shell, f"touch {shlex.quote(str(marker))}\n")
    assert marker.exists()


def test_transaction_stages_check_before_commit_and_quotes_everything() -> None:
    table = LookupTable("/etc/postfix/virtual", "postmaster@example.org root\n")
    settings = Postconf({"virtual_alias_maps": "lmdb:/etc/postfix/virtual", "smtpd_banner": "$myhostname ESMTP; x"})
    changes = [c for c in (settings.compare([{}]), table.compare([FileState(None), None])) if c]
    script = transaction_script(changes, "/var/lib/mailkit/backups/x", "/var/lib/mailkit")
    stage, check, commit = (
        script.index("postmap lmdb:"),
        script.index("check postfix postfix_check"),
        script.index("phase=commit"),
    )
    assert script.index('postconf -c "$pf" -e') < check < commit < script.index('mv -f -- "$pf/main.cf"')
    assert stage < check and script.index('mv -f -- "$mk1.lmdb" /etc/postfix/virtual.lmdb') > commit
    assert "'smtpd_banner=$myhostname ESMTP; x'" in script
    assert "save /etc/postfix/virtual.lmdb" in script and "save /etc/postfix/main.cf" in script
    assert script.index("effect postfix") > commit and "'postfix status'" in script


def test_pending_reload_from_an_interrupted_apply_is_planned(tmp_path: Path) -> None:
    (tmp_path / "pending-reload").write_text("backup /var/lib/mailkit/backups/b1\npostfix\n\nunknown-thing\n")
    the_plan = engine.plan(LocalShell(), [], state_dir=str(tmp_path))
    assert the_plan.pending == ["postfix"]
    assert the_plan.pending_backup == "/var/lib/mailkit/backups/b1"
    assert the_plan.services == ["postfix"]
    assert "interrupted apply" in str(the_plan)


def test_secrets_are_redacted_in_diffs() -> None:
    line = "alice@example.org:{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2g::5000:5000::\n"
    diff = unified_diff("/etc/dovecot/users", None, line.encode())
    assert "argon2id$v=19" not in diff and "<redacted>" in diff and "alice@example.org" in diff
    crypt = unified_diff("/etc/x", b"bob:$6$saltsalt$abcdefghijk:1\n", b"bob:$y$j9T$salt$hash:1\n")
    assert "$6$saltsalt" not in crypt and "$y$j9T" not in crypt
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n"
    assert "MIIEvQ" not in redact(pem)
    rsa = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIB\n-----END RSA PRIVATE KEY-----\n"
    assert "MIIEpAIB" not in unified_diff("/etc/dkim.key", None, rsa.encode())
    secret_file = unified_diff("/etc/ssl/private/mail.key", b"a", b"b", secret=True)
    assert "secret content: not shown" in secret_file and "\n+b" not in secret_file
    tsig = 'key "k." { algorithm hmac-sha256; secret "c2VjcmV0c2VjcmV0"; };'
    assert "c2VjcmV0c2VjcmV0" not in redact(tsig)


def test_postconf_diff_shows_old_and_new_values() -> None:
    change = Postconf({"myhostname": "mail.$mydomain", "mydomain": "example.org"}).compare(
        [{"myhostname": "mail.example.org", "mydomain": "example.org"}]
    )
    assert change is not None and change.summary == "set 1 main.cf setting(s): myhostname"
    assert "-myhostname = mail.example.org\n+myhostname = mail.$mydomain\n" in change.diff
    assert not change.needs_restart
    restart = Postconf({"inet_interfaces": "loopback-only"}).compare([{}])
    assert restart is not None and restart.needs_restart
    # Written down or removed while equal to Postfix's default: a reload, which keeps the open sessions.
    for settings, current in (
        ({"inet_interfaces": "all"}, {}),
        ({"inet_interfaces": None}, {"inet_interfaces": "all"}),
    ):
        same = Postconf(settings).compare([current])
        assert same is not None and not same.needs_restart, settings


def test_master_service_entry_and_diff() -> None:
    service = MasterService(
        "submission",
        "inet",
        "smtpd",
        chroot="y",
        options={"syslog_name": "postfix/submission", "smtpd_tls_security_level": "encrypt"},
    )
    assert service.entry == "submission inet n - y - - smtpd"
    assert service.compare([(service.entry, dict(service.options))]) is None
    change = service.compare([None])
    assert change is not None and "+submission inet n - y - - smtpd" in change.diff
    with pytest.raises(Exception, match="contains a space"):
        MasterService("submission", "inet", "smtpd", options={"smtpd_client_restrictions": "a, b"})


def test_packages_and_preseed_are_validated() -> None:
    change = Packages(["postfix", "postfix-lmdb"]).compare([(60, False), "3.10.13-1", None])
    assert change is not None and change.summary == "install postfix-lmdb" and change.run is not None
    assert Packages(["postfix"]).compare([None, "3.10.13-1"]) is None
    with pytest.raises(Exception, match="Debian package name"):
        Packages(["postfix; rm -rf /"])
    with pytest.raises(Exception, match="debconf line"):
        Packages(["postfix"], preseed=["postfix postfix/mailname string $(reboot)"])


def test_lookup_table_is_rebuilt_when_its_database_is_missing() -> None:
    table = LookupTable("/etc/postfix/virtual", "a@example.org b@example.org\n")
    same = FileState(b"a@example.org b@example.org\n", 0o644, "root", "root")
    assert table.compare([same, ("file", 0o644, "root", "root")]) is None
    rebuild = table.compare([same, None])
    assert rebuild is not None and rebuild.summary == "rebuild /etc/postfix/virtual.lmdb"
    with pytest.raises(Exception, match=r"line 1.*carriage return"):
        LookupTable("/etc/postfix/virtual", "a@example.org b@example.org\r\n")


def test_template_errors_name_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "postfix").mkdir()
    (tmp_path / "postfix" / "main.cf.j2").write_text("# line 1\nmyhostname = {{ host }}\nmydomain = {{ nope }}\n")
    (tmp_path / "postfix" / "broken.j2").write_text("ok\n{% if x %}\nunclosed\n")
    templates = Templates(tmp_path)
    assert templates.render("postfix/main.cf", {"host": "mail", "nope": "x"}).startswith("# line 1\nmyhostname = mail")
    with pytest.raises(TemplateError) as undefined:
        templates.render("postfix/main.cf", {"host": "mail"})
    assert undefined.value.where.endswith("postfix/main.cf.j2:3")
    assert "nope" in str(undefined.value)
    with pytest.raises(TemplateError) as syntax:
        templates.render("postfix/broken", {})
    assert "broken.j2:" in syntax.value.where
    with pytest.raises(TemplateError, match="no such template"):
        templates.render("postfix/absent", {})


def test_a_summarised_file_shows_its_summary_not_its_content() -> None:
    diff = unified_diff(
        "/etc/ssl/certs/mail.pem", None, b"-----BEGIN CERTIFICATE-----\nMIIB\n", summary="a certificate"
    )
    assert "(content not shown: a certificate)" in diff and "MIIB" not in diff


def test_config_value_facts_ask_their_own_tool() -> None:
    from mailkit.core.facts import DoveconfValue, PostconfValue

    assert PostconfValue("myhostname").command() == ["postconf", "-h", "myhostname"]
    assert DoveconfValue("mail_home").command() == ["doveconf", "-h", "mail_home"]
    assert DoveconfValue("mail_home").parse("/var/vmail/%d/%n\n", 0) == "/var/vmail/%d/%n"
    assert DoveconfValue("nope").parse("", 1) is None


def test_services_take_config_changes_by_reload_and_restart_only_when_needed() -> None:
    from mailkit.core.services import SERVICES

    postfix = SERVICES["postfix"]
    assert postfix.apply_command(False) == ("systemctl", "reload-or-restart", "postfix")
    assert postfix.apply_command(True) == ("systemctl", "restart", "postfix")
    assert SERVICES["opendkim"].apply_command(False) == ("systemctl", "restart", "opendkim")


def test_a_directory_under_a_setgid_parent_gets_exactly_its_mode(tmp_path: Path) -> None:
    parent = tmp_path / "mail"
    parent.mkdir()
    parent.chmod(0o2775)  # like Debian's /var/mail
    wanted = Directory(str(parent / "vhosts"), owner=USER, group=GROUP, mode=0o750)
    engine.apply(LocalShell(), [wanted], state_dir=str(tmp_path / "state"))
    assert oct((parent / "vhosts").stat().st_mode & 0o7777) == "0o750", "the inherited setgid bit is cleared"
    assert not engine.apply(LocalShell(), [wanted], state_dir=str(tmp_path / "state")).changed


def test_a_new_apply_waits_for_a_transaction_that_outlived_its_connection(tmp_path: Path) -> None:
    """Security review, finding 8: the lock of an apply whose connection dropped is gone, but its transaction
    goes on; the next apply must not read or write until it has ended."""
    state = tmp_path / "state"
    state.mkdir()
    running = subprocess.Popen(["flock", str(state / TRANSACTION_LOCK), "sleep", "2"])
    try:
        time.sleep(0.3)
        started = time.monotonic()
        with HostLock(LocalShell(), str(state), timeout=30, progress=lambda _: None):
            waited = time.monotonic() - started
            assert running.poll() is not None, "entered while the earlier transaction still ran"
        assert waited > 1.0
    finally:
        running.wait(10)


def test_the_process_that_runs_a_transaction_holds_its_lock(tmp_path: Path) -> None:
    lock = tmp_path / "state" / TRANSACTION_LOCK
    shell = LocalShell()
    seen: list[int] = []
    script = f"flock -n {shlex.quote(str(lock))} true; echo $? > {shlex.quote(str(tmp_path / 'inside'))}\n"
    engine.run_script(shell, script, str(lock))
    seen.append(int((tmp_path / "inside").read_text()))
    assert seen == [1], "while the script ran, its lock could not be taken by anyone else"
    assert subprocess.run(["flock", "-n", str(lock), "true"], check=False).returncode == 0, "released at the end"


def test_rspamd_is_restarted_by_a_script_that_parses_and_probed_by_a_milter_handshake() -> None:
    from mailkit.core.services import RSPAMD_MILTER_PORT, RSPAMD_WORKER_PORTS, service

    rspamd = service("rspamd")
    assert rspamd.apply_command(needs_restart=True) == rspamd.apply_command(needs_restart=False)
    shell, flag, script = rspamd.apply_command(needs_restart=True)
    assert (shell, flag) == ("sh", "-c")
    assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0, "the restart script parses"
    for port in RSPAMD_WORKER_PORTS:
        assert f"sport = :{port}" in script, "a client on any worker port is waited for"
    assert "kill -KILL" in script and '[ -z "$(clients)" ]' in script, "a worker is ended only with no client"
    assert script.rstrip().endswith("fi") and "systemctl start rspamd" in script
    probe = shlex.split(rspamd.probe)
    assert probe[:2] == ["bash", "-c"] and f"/dev/tcp/127.0.0.1/{RSPAMD_MILTER_PORT}" in probe[2]
    assert subprocess.run(["bash", "-n", "-c", probe[2]]).returncode == 0, "the probe parses"
    # Nothing listens on the milter port here: the probe fails (a probe that cannot fail would prove nothing).
    assert subprocess.run(["bash", "-c", probe[2]], capture_output=True, timeout=10).returncode != 0


def _run_restart_with(tmp_path: Path, states: list[str]) -> list[str]:
    """RSPAMD_RESTART against a fake systemctl (and ss, sleep) whose ``is-active`` answers ``states`` in turn (the
    last one for ever after); what the script asked systemctl to do."""
    from mailkit.core.services import RSPAMD_RESTART

    (tmp_path / "states").write_text("\n".join(states) + "\n")
    fake = f"""#!/bin/sh
case "$1" in
is-active)
    s=$(head -n 1 {tmp_path}/states)
    [ "$(wc -l < {tmp_path}/states)" -gt 1 ] && sed -i 1d {tmp_path}/states
    echo "is-active: $s" >> {tmp_path}/calls
    echo "$s" ;;
*) echo "$*" >> {tmp_path}/calls ;;
show) echo 0 ;;
esac
"""
    for name, body in (("systemctl", fake), ("ss", "#!/bin/sh\n"), ("sleep", "#!/bin/sh\n")):
        (tmp_path / name).write_text(body)
        (tmp_path / name).chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    subprocess.run(["sh", "-c", RSPAMD_RESTART], env=env, check=True, timeout=60)
    return [c for c in (tmp_path / "calls").read_text().splitlines() if not c.startswith("show")]


def test_rspamd_restart_waits_for_a_queued_stop_that_has_not_begun(tmp_path: Path) -> None:
    # systemd has queued the stop but not begun it: the unit still says active for a moment. A start now would
    # replace the queued stop and leave the old configuration running; the script waits for the stop instead.
    calls = _run_restart_with(tmp_path, ["active", "active", "deactivating", "deactivating", "inactive"])
    asked = [c for c in calls if not c.startswith("is-active")]
    assert asked == ["stop --no-block rspamd", "start rspamd"]
    assert calls[calls.index("start rspamd") - 1] == "is-active: inactive", calls


def test_rspamd_restart_that_never_sees_the_stop_begin_restarts_for_sure(tmp_path: Path) -> None:
    calls = _run_restart_with(tmp_path, ["active"])
    assert [c for c in calls if not c.startswith("is-active")] == ["stop --no-block rspamd", "restart rspamd"]


def test_rspamd_restart_of_a_stopped_rspamd_just_starts_it(tmp_path: Path) -> None:
    calls = _run_restart_with(tmp_path, ["inactive"])
    assert [c for c in calls if not c.startswith("is-active")] == ["stop --no-block rspamd", "start rspamd"]
