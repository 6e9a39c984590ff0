"""The backups chapter's own logic (mailkit/guide/backups.py, mailkit/server/backup_space.py): what a reader gives
is validated before anything reaches a host, what the backup host answers is read as hostile, and the secrets are
made on the server, never in a plan. The lab test (tests/lab/test_68_backups.py) runs borg for real."""

from __future__ import annotations

import json

import pytest

from mailkit.core.errors import MailkitError, UsageError
from mailkit.core.resources import File, GeneratedSecret
from mailkit.core.result import Result
from mailkit.core.values import Hostname, ValueRejected
from mailkit.guide import backups, restore
from mailkit.server.backup_runs import read_backup_runs
from mailkit.server.backup_space import BackupSpace
from mailkit.status.inside import backup_rows

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIClnkdY0ORW99nEM6kMP/5ZtzYiwdyTakgs3wzLbZEh3"


def _space(**changes: object) -> BackupSpace:
    given: dict[str, object] = {"host": Hostname("backup.example.net"), "user": "borg", "path": "mail", "host_key": KEY}
    return BackupSpace(**{**given, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"path": "../etc"}, "BACKUP_PATH"),
        ({"path": "a/../../b"}, "BACKUP_PATH"),
        ({"path": "mail; rm -rf ~"}, "BACKUP_PATH"),
        ({"path": 'mail" --foo'}, "BACKUP_PATH"),
        ({"path": ""}, "BACKUP_PATH"),
        ({"user": "borg user"}, "BACKUP_USER"),
        ({"user": "-oProxyCommand=x"}, "BACKUP_USER"),
        ({"port": 0}, "BACKUP_PORT"),
        ({"port": True}, "BACKUP_PORT"),
        ({"host_key": "ssh-ed25519 AAAA"}, "BACKUP_HOST_KEY"),
        ({"host_key": "ssh-rsa " + KEY.split()[1]}, "BACKUP_HOST_KEY"),  # an ed25519 key called RSA
        ({"host_key": ""}, "BACKUP_HOST_KEY"),
    ],
)
def test_a_backup_space_with_bad_values_is_refused_with_the_parameter_named(changes: dict, field: str) -> None:
    with pytest.raises(ValueRejected, match=field):
        _space(**changes)


def test_the_repository_names_and_the_lines_for_ssh() -> None:
    assert _space().repository == "ssh://borg@backup.example.net/./mail"
    assert _space(path="/srv/borg/mail", port=23).repository == "ssh://borg@backup.example.net:23//srv/borg/mail"
    assert _space(port=23).known_hosts_line() == f"[backup.example.net]:23 {KEY}"
    assert _space(host_key=KEY + " root@backup").host_key == KEY, "a comment after the key is dropped"
    line = _space().authorized_line(KEY + " root@mail", "mailkit-backup@mail.example.org")
    serve = "borg serve --append-only --restrict-to-repository mail"
    assert line == f'command="{serve}",restrict {KEY} mailkit-backup@mail.example.org'
    with pytest.raises(ValueRejected):
        _space().authorized_line(KEY, 'x",no-restrict')


def test_the_plan_holds_no_secret_and_the_settings_are_quoted() -> None:
    resources = backups.install(_space(path="mail.example.org"))
    secrets = [r for r in resources if isinstance(r, GeneratedSecret)]
    assert [s.path for s in secrets] == [backups.KEY, backups.PASSPHRASE]
    assert all(s.mode == 0o600 and s.owner == "root" for s in secrets)
    files = {r.path: r for r in resources if isinstance(r, File)}
    assert files[backups.ENV_FILE].mode == 0o600
    env = files[backups.ENV_FILE].content.decode()
    assert "BORG_PASSPHRASE" not in env and f"BORG_PASSCOMMAND='cat {backups.PASSPHRASE}'" in env
    assert "StrictHostKeyChecking=yes" in env and f"UserKnownHostsFile={backups.KNOWN_HOSTS}" in env
    script = files[backups.SCRIPT].content.decode()
    assert "for path in /var/vmail /etc/postfix /etc/dovecot /etc/rspamd" in script
    assert '[ "$rc" -le 1 ]' in script and "--rdb" in script
    assert "OnCalendar=*-*-* 03:15:00" in files[backups.TIMER_FILE].content.decode()
    assert files[backups.KNOWN_HOSTS].content.decode() == f"backup.example.net {KEY}\n"


@pytest.mark.parametrize("when", ["03:15; rm -rf /", "$(reboot)", "*-*-* 03:15:00\nExecStart=/bin/sh", ""])
def test_a_bad_time_for_the_timer_is_refused(when: str) -> None:
    with pytest.raises(ValueRejected, match="BACKUP_AT"):
        backups.install(_space(), when)


def test_the_backup_hosts_listing_is_read_as_hostile() -> None:
    good = {
        "archives": [
            {"name": "mail-2", "time": "2026-12-06T03:15:02"},
            {"name": "mail-1", "time": "2026-12-05T03:15:01"},
        ]
    }
    assert backups.archives(json.dumps(good)) == [("mail-1", "2026-12-05T03:15:01"), ("mail-2", "2026-12-06T03:15:02")]
    assert backups.newest_archive(json.dumps(good)) == ("mail-2", "2026-12-06T03:15:02")
    for bad in (
        "",
        "[]",
        '{"archives": []}',
        '{"archives": [{"name": "x"}]}',
        json.dumps({"archives": [{"name": "<script>", "time": "2026-12-06T03:15:02"}]}),
        json.dumps({"archives": [{"name": "a", "time": "2026-12-06T03:15:02"}] * (backups.MAX_ARCHIVES + 1)}),
    ):
        with pytest.raises(MailkitError):
            backups.archives(bad)


class Says:
    """A server whose one command answers ``stdout`` with exit code ``exited`` (mailkit's own logic only)."""

    def __init__(self, stdout: str, exited: int = 0) -> None:
        self.stdout, self.exited = stdout, exited

    def run(self, argv: list[str], check: bool = True, timeout: int = 60, input: str | None = None) -> Result:
        return Result(" ".join(argv[:1]), self.stdout, "", self.exited)


SHOWN = "enabled\nactive\nResult={result}\nExecMainStatus={status}\nExecMainExitTimestamp=@{ended}\n{now}\n"


def test_mailkit_check_reads_the_backup_runs_from_systemd() -> None:
    assert backup_rows(Says("", 3)) == []  # type: ignore[arg-type], "no timer: the chapter is not applied, no rows"
    good = backup_rows(Says(SHOWN.format(result="success", status="0", ended=1796500000, now=1796500000 + 7200)))
    assert [(r.name, r.ok, r.detail) for r in good] == [
        ("a backup runs every night", True, "mailkit-backup.timer enabled, active"),
        ("the last backup succeeded", True, "result success, exit 0"),
        ("the last backup is less than a day old", True, "2 h old"),
    ]
    assert all(r.part == 7 and r.group == "backup" for r in good)
    stale = backup_rows(Says(SHOWN.format(result="success", status="0", ended=1796500000, now=1796500000 + 30 * 3600)))
    assert [r.ok for r in stale] == [True, True, False]
    failed = backup_rows(Says(SHOWN.format(result="exit-code", status="2", ended=1796500000, now=1796500000 + 60)))
    assert [r.ok for r in failed] == [True, False, False]
    assert failed[2].detail == "the last run failed: no new backup"
    never = backup_rows(Says("enabled\nactive\nResult=success\nExecMainStatus=0\nExecMainExitTimestamp=\n1796500000\n"))
    assert [r.ok for r in never] == [True, True, False] and never[2].detail == "no backup yet"


def test_what_systemd_says_is_read_as_hostile() -> None:
    hostile = "enabled\nactive\nResult=<script>alert(1)</script>\nExecMainStatus=0\n" + "x" * 10_000 + "\n1796500000\n"
    runs = read_backup_runs(Says(hostile))  # type: ignore[arg-type]
    assert runs.installed and runs.result == "" and runs.seconds_ago is None


class Recorded:
    """A server that answers ``find`` with ``found`` and records every command it is asked to run."""

    def __init__(self, found: str) -> None:
        self.found, self.asked = found, []  # type: ignore[var-annotated]

    def run(self, argv: list[str], check: bool = True, timeout: int = 60, input: str | None = None) -> Result:
        self.asked.append(argv)
        return Result(" ".join(argv[:1]), self.found if "find" in " ".join(argv) else "", "", 0)


def test_a_restore_onto_a_server_with_mail_is_refused_before_anything() -> None:
    server = Recorded("/var/vmail/example.org/alice/cur/1.M1:2,S\n")
    with pytest.raises(UsageError, match="has mail already"):
        restore.restore(server, "2026-12-06T03:15:00")  # type: ignore[arg-type]
    assert len(server.asked) == 1 and "find" in server.asked[0][-1], "nothing but the look for mail"
    with pytest.raises(ValueRejected, match="archive"):
        restore.restore(Recorded(""), "--force")  # type: ignore[arg-type]


def test_a_new_server_gets_every_package_and_account_but_no_postfix_that_answers() -> None:
    from mailkit.core.context import HostFacts
    from mailkit.core.resources import Packages, SystemAccount
    from mailkit.guide.part1 import Part1
    from mailkit.guide.part2 import Part2
    from mailkit.guide.part3 import Part3
    from mailkit.guide.part4 import Part4
    from mailkit.guide.parts import Parts

    part1 = Part1()
    part2 = Part2(part1)
    part3 = Part3(part1)
    guide = Parts(part1, part2, part3, Part4(part3, part2))
    packages, *accounts = restore.packages(guide, HostFacts("trixie", None, None))
    assert isinstance(packages, Packages) and packages.preseed == restore.HOLD_MAIL
    for name in ("postfix", "dovecot-imapd", "rspamd", "nftables", "fail2ban", "borgbackup"):
        assert name in packages.names, name
    assert [(a.user, a.uid) for a in accounts if isinstance(a, SystemAccount)] == [("vmail", 5000)]
