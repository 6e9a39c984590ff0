"""The apply engine against real Postfix on the lab's mail host (trixie and bookworm)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from mailkit.core import engine
from mailkit.core.context import host_facts
from mailkit.core.errors import MailkitError, UsageError
from mailkit.core.facts import (
    Account,
    DebianRelease,
    ListeningPorts,
    PackageVersion,
    PostconfValue,
    ReloadCount,
    ServiceIs,
    gather,
)
from mailkit.core.resources import Directory, File, GeneratedKey, LookupTable, MasterService, Packages, Postconf
from mailkit.core.resources.keys import PublicKey
from mailkit.core.services import SERVICES, Service, register
from mailkit.core.ssh import Connection
from mailkit.core.values import Domain, ValueRejected
from mailkit.lab.lab import Lab
from mailkit.lab.lab_target import lab_connection

pytestmark = pytest.mark.lab

PRESEED = (
    "postfix postfix/main_mailer_type select Internet Site",
    "postfix postfix/mailname string mail.example.org",
)
CONFIG = "/etc/postfix/main.cf /etc/postfix/master.cf /etc/postfix/virtual_alias /etc/postfix/virtual_alias.lmdb"


@pytest.fixture(scope="module")
def mail(lab: Lab) -> Iterator[Connection]:
    lab.reset()  # the fresh server these tests start from, whatever ran before
    conn = lab_connection("mail")
    result = engine.apply(conn, [Packages(("postfix", "postfix-lmdb"), preseed=PRESEED)])
    assert [c.summary for c in result.changes] == ["install postfix postfix-lmdb"]
    yield conn
    conn.close()
    lab.reset()  # later tests expect the fresh server the lab hands over


def _desired(alias_target: str = "root") -> list:
    return [
        Postconf(
            {
                "mydomain": Domain("example.org"),
                "myorigin": "$mydomain",
                "delay_warning_time": "4h",
                "virtual_alias_maps": "lmdb:/etc/postfix/virtual_alias",
            }
        ),
        LookupTable("/etc/postfix/virtual_alias", f"postmaster@example.org {alias_target}\n"),
    ]


def _master_pid(conn: Connection) -> str:
    return conn.run(["cat", "/var/spool/postfix/pid/master.pid"]).stdout.strip()


def _sums(conn: Connection) -> str:
    return conn.run(["sh", "-c", f"sha256sum {CONFIG} /etc/mailname"]).stdout


def test_facts_of_a_real_host(lab: Lab, mail: Connection) -> None:
    release, version, active, delimiter, ports, root = gather(
        mail,
        [
            DebianRelease(),
            PackageVersion("postfix"),
            ServiceIs("postfix"),
            PostconfValue("mail_owner"),
            ListeningPorts(),
            Account("root"),
        ],
    )
    assert release == ("forky" if lab.status()["release"] == "sid" else lab.status()["release"])
    assert version and version[0].isdigit()
    assert active is True
    assert delimiter == "postfix"
    assert 25 in ports and 22 in ports
    assert root[:2] == (0, 0)
    facts = host_facts(mail)
    assert facts.postfix is not None and facts.postfix >= (3, 5)
    assert facts.dovecot_major is None
    assert facts.as_context()["release"] == release


def test_small_postfix_change_is_shown_applied_and_reloaded(mail: Connection) -> None:
    reloads = ReloadCount("postfix").get(mail)
    pid = _master_pid(mail)
    the_plan = engine.plan(mail, _desired())
    text = str(the_plan)
    assert "+delay_warning_time = 4h" in text
    assert "+postmaster@example.org root" in text
    assert "delay_warning_time" not in mail.run(["postconf", "-n"]).stdout, "plan must not change anything"
    result = engine.apply(mail, _desired())
    assert result.validated == ["/etc/postfix/virtual_alias", "postfix"] and result.reloaded == ["postfix"]
    assert mail.run(["postconf", "-h", "delay_warning_time"]).stdout.strip() == "4h"
    lookup = mail.run(["postmap", "-q", "postmaster@example.org", "lmdb:/etc/postfix/virtual_alias"])
    assert lookup.stdout.strip() == "root"
    assert ReloadCount("postfix").get(mail) > reloads
    assert _master_pid(mail) == pid, "a reload keeps the master process"
    assert "reloaded: postfix" in str(result)


def test_second_apply_is_no_change_and_reloads_nothing(mail: Connection) -> None:
    engine.apply(mail, _desired())
    reloads = ReloadCount("postfix").get(mail)
    pid = _master_pid(mail)
    channels = mail.channels_opened
    result = engine.apply(mail, _desired())
    assert not result.changed
    assert result.reloaded == [] and result.validated == []
    assert str(result) == "no change; nothing reloaded"
    assert mail.channels_opened - channels == 1, "a re-apply with nothing to do is one round trip"
    assert ReloadCount("postfix").get(mail) == reloads
    assert _master_pid(mail) == pid


def test_rejected_value_never_goes_live_and_postfix_keeps_running(lab: Lab, mail: Connection) -> None:
    engine.apply(mail, _desired())
    before = _sums(mail)
    pid = _master_pid(mail)
    bad = [
        *_desired(alias_target="abuse@example.org"),
        Postconf({"message_size_limit": "abc"}),
        File("/etc/mailname", "changed.example.org\n"),
    ]
    reloads = ReloadCount("postfix").get(mail)
    with pytest.raises(engine.ApplyError) as caught:
        engine.apply(mail, bad)
    assert "bad numerical configuration" in str(caught.value)
    assert "message_size_limit" in caught.value.result.stderr + caught.value.result.stdout
    assert caught.value.restored == [] and "nothing went live" in str(caught.value)
    assert _sums(mail) == before, "no live file was touched"
    assert ServiceIs("postfix").get(mail)
    assert _master_pid(mail) == pid
    assert ReloadCount("postfix").get(mail) == reloads, "the running Postfix never saw the bad config"
    leftovers = mail.run(["sh", "-c", "ls -a /etc/postfix /etc | grep mailkit"], check=False).stdout
    assert leftovers == "", "candidates are removed"
    assert not engine.plan(mail, _desired()), "the previous config is back"
    with lab_connection("outside") as outside:
        sent = outside.run(
            [
                "swaks",
                "--to",
                "root@mail.example.org",
                "--from",
                "test@example.net",
                "--server",
                "mail.example.org",
                "--timeout",
                "20",
            ],
            check=False,
        )
    assert sent.ok, sent.stdout + sent.stderr
    assert "250 2.0.0 Ok: queued" in sent.stdout


def test_bad_input_changes_nothing(mail: Connection) -> None:
    before = _sums(mail)
    channels = mail.channels_opened
    for build in (
        lambda: Postconf({"myhostname": "mail.example.org\nrelayhost = evil.test"}),
        lambda: Postconf({"my hostname": "x"}),
        lambda: File("/etc/postfix/../shadow", "x"),
        lambda: LookupTable("/etc/postfix/virtual alias", "a b\n"),
        lambda: Domain("example.org; rm -rf /"),
        lambda: Packages(("postfix;reboot",)),
    ):
        with pytest.raises(ValueRejected):
            engine.apply(mail, [build()])
    assert mail.channels_opened == channels, "nothing may reach the host"
    assert _sums(mail) == before


def _kill_applying_session(watcher: Connection, stop: threading.Event, killed: list[str]) -> None:
    """Wait for the verified-script wrapper of an apply, then kill its sshd session (the connection drops)."""
    while not stop.is_set():
        found = watcher.run(["pgrep", "-f", "-o", "^sh -c umask 077"], check=False).stdout.split()
        if found:
            parent = watcher.run(["ps", "-o", "ppid=", "-p", found[0]], check=False).stdout.strip()
            if parent:
                watcher.run(["kill", "-9", parent], check=False)
                killed.append(parent)
                return
        time.sleep(0.01)


def test_cut_connection_mid_apply_leaves_old_or_new_files_and_reapply_converges(mail: Connection) -> None:
    count, size = 30, 256 * 1024

    def version(tag: str) -> list:
        files = [
            File(f"/etc/mailkit-cut/f{i:02}.conf", (f"{tag} {i} " * (size // 8))[:size] + "\n", service="postfix")
            for i in range(count)
        ]
        return [Directory("/etc/mailkit-cut"), *files]

    old, new = version("old"), version("new")
    engine.apply(mail, old)
    applying = lab_connection("mail")
    stop, killed = threading.Event(), []
    with lab_connection("mail") as watcher:
        thread = threading.Thread(target=_kill_applying_session, args=(watcher, stop, killed))
        thread.start()
        try:
            engine.apply(applying, new)
        except MailkitError:
            pass  # the cut may surface as a failed apply (then its files were restored) or not at all
        finally:
            stop.set()
            thread.join()
    applying.close()
    assert killed, "the apply finished before its connection could be cut"
    with lab_connection("mail") as after:
        time.sleep(0.5)  # a script that kept running on the host finishes its last rename
        contents = {r.path: after.read(r.path) for r in new[1:]}
        for o, n in zip(old[1:], new[1:], strict=True):
            assert contents[n.path] in (o.data, n.data), f"{n.path} is neither the old nor the new version"
        assert not after.run(["sh", "-c", "ls /etc/mailkit-cut | grep -v '\\.conf$'"], check=False).stdout
        result = engine.apply(after, new)
        assert result.reloaded == ["postfix"] or not result.changed
        assert not engine.plan(after, new), "re-applying converges"
        assert not engine.plan(after, new).pending
        assert {r.path: after.read(r.path) for r in new[1:]} == {r.path: r.data for r in new[1:]}


def test_removal_is_planned_applied_and_reapplied_as_no_change(mail: Connection) -> None:
    engine.apply(mail, [*_desired(), MasterService("mailkit-test", "unix", "discard", maxproc="1")])
    removal = [
        Postconf({"delay_warning_time": None}),
        LookupTable("/etc/postfix/virtual_alias", present=False),
        MasterService("mailkit-test", "unix", present=False),
        File("/etc/mailname.mailkit-test", present=False),
    ]
    mail.run(["sh", "-c", "echo old > /etc/mailname.mailkit-test"])
    text = str(engine.plan(mail, removal))
    assert "-delay_warning_time = 4h" in text and "remove master.cf service mailkit-test/unix" in text
    # Files removed whole are counted, never printed (they may hold an admin's own secrets).
    assert text.count("(the whole file goes: 1 line, not shown)") == 2
    assert "-postmaster@example.org root" not in text and "-old" not in text
    engine.apply(mail, [Postconf({"virtual_alias_maps": None})])
    result = engine.apply(mail, removal)
    assert result.reloaded == ["postfix"]
    assert "delay_warning_time" not in mail.run(["postconf", "-n"]).stdout
    assert mail.run(["postconf", "-M", "mailkit-test/unix"]).stdout.strip() == ""
    assert mail.run(["ls", "/etc/postfix"]).stdout.count("virtual_alias") == 0
    again = engine.apply(mail, removal)
    assert not again.changed and not again.reloaded


MILTER_UNIT = """[Unit]
Description=a stand-in milter for mailkit's tests
[Service]
ExecStart=/bin/sleep infinity
ExecReload=/bin/true
"""


def test_services_take_effect_in_dependency_order(mail: Connection) -> None:
    register(Service("test-milter", "mailkit-test-milter", ("systemctl", "restart", "mailkit-test-milter"), after=()))
    postfix = SERVICES["postfix"]
    register(Service(**{**postfix.__dict__, "after": (*postfix.after, "test-milter")}))
    try:
        engine.apply(mail, [File("/etc/systemd/system/mailkit-test-milter.service", MILTER_UNIT)])
        mail.run(["systemctl", "daemon-reload"])
        since = mail.run(["date", "+%Y-%m-%d %H:%M:%S"]).stdout.strip()
        result = engine.apply(
            mail,
            [
                Postconf({"delay_warning_time": "5h"}),
                File("/etc/mailkit-test-milter.conf", "x\n", service="test-milter"),
            ],
        )
        assert result.reloaded == ["test-milter", "postfix"]
        log = mail.run(["journalctl", "-q", "-o", "cat", "--since", since, "_PID=1"]).stdout
        started = log.index("Started mailkit-test-milter.service")
        assert started < log.index("Reload", started), "the milter was (re)started before Postfix reloaded"
    finally:
        register(postfix)
        del SERVICES["test-milter"]
        mail.run(
            ["sh", "-c", "systemctl stop mailkit-test-milter; rm -f /etc/systemd/system/mailkit-test-milter.service"]
        )


def test_a_restart_that_fails_brings_the_old_files_back_and_postfix_keeps_accepting_mail(mail: Connection) -> None:
    engine.apply(mail, _desired())
    before = _sums(mail)
    # Something else holds port 2525: the master cannot bind it and exits after the restart.
    # (perl-base is on every Debian host; python3 is not on the mail host.)
    hold = "use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalPort => 2525, Listen => 1) or die $!; sleep 300"
    mail.run(["systemd-run", "--unit", "mailkit-test-port-blocker", "perl", "-e", hold])
    waited = "for i in $(seq 100); do ss -Hltn '( sport = :2525 )' | grep -q . && exit 0; sleep 0.1; done; exit 1"
    mail.run(["sh", "-c", waited])
    try:
        with pytest.raises(engine.ApplyError) as caught:
            engine.apply(
                mail,
                [Postconf({"inet_protocols": "all"}), MasterService("2525", "inet", "smtpd", chroot="y")],
            )
    finally:
        mail.run(["systemctl", "stop", "mailkit-test-port-blocker"], check=False)
    error = caught.value
    assert error.service == "postfix" and "did not come back" in str(error)
    assert "/etc/postfix/main.cf" in error.restored and "/etc/postfix/master.cf" in error.restored
    assert error.status.recovered == ["postfix"] and "STILL DOWN" not in str(error)
    assert _sums(mail) == before
    assert mail.run(["postfix", "status"], check=False).ok
    with lab_connection("outside") as outside:
        sent = outside.run(
            ["swaks", "--to", "root@mail.example.org", "--from", "test@example.net", "--server", "mail.example.org"],
            check=False,
        )
    assert "250 2.0.0 Ok: queued" in sent.stdout


def test_a_generated_key_never_leaves_the_host(mail: Connection) -> None:
    key = GeneratedKey("/etc/mailkit-test/dkim.key", group="postfix", mode=0o640)
    the_plan = engine.plan(mail, [key])
    assert "never shown" in str(the_plan)
    result = engine.apply(mail, [key])
    public = PublicKey(key.path).get(mail)
    assert public and len(public) > 300
    private = mail.run(["cat", key.path]).stdout
    body = "".join(private.splitlines()[1:-1])
    assert body[:40] not in str(the_plan) + str(result) + the_plan._repr_html_()
    assert mail.run(["stat", "-c", "%U:%G %a", key.path]).stdout.strip() == "root:postfix 640"
    assert not engine.apply(mail, [key]).changed, "an existing key is kept"
    assert mail.run(["find", "/etc/mailkit-test", "-perm", "/o=rwx", "-type", "f"]).stdout == ""
    # Backups keep each file's own mode inside directories only root can enter.
    modes = mail.run(["sh", "-c", "stat -c %a /var/lib/mailkit /var/lib/mailkit/backups /var/lib/mailkit/backups/*/"])
    assert set(modes.stdout.split()) == {"700"}
    copies = mail.run(["sh", "-c", "cat /var/lib/mailkit/backups/*/* 2>/dev/null"], check=False).stdout
    assert body[:40] not in copies


def test_keys_never_follow_a_link_and_a_key_of_the_old_layout_is_kept(mail: Connection) -> None:
    """Security review, finding 3, on a real Debian: another account's folder holds an old key and a planted
    link; a link stands where a new key goes. Nothing root owns is chowned, chmodded or copied through them."""
    shadow = mail.run(["stat", "-c", "%U:%G %a %s", "/etc/shadow"]).stdout
    mail.run(
        [
            "sh",
            "-c",
            "set -e; rm -rf /var/lib/old-dkim /etc/mailkit-keys; install -d -o nobody -m 755 /var/lib/old-dkim; "
            "openssl genpkey -algorithm RSA -out /var/lib/old-dkim/a.key 2>/dev/null; "
            "chown nobody /var/lib/old-dkim/a.key; "
            "su -s /bin/sh nobody -c 'ln -s /etc/ssl/private/ssl-cert-snakeoil.key /var/lib/old-dkim/b.key'; "
            "install -d -m 750 -g postfix /etc/mailkit-keys; ln -s /etc/shadow /etc/mailkit-keys/c.key",
        ]
    )
    adopted = GeneratedKey("/etc/mailkit-keys/a.key", group="postfix", mode=0o640, adopt="/var/lib/old-dkim/a.key")
    fresh = GeneratedKey("/etc/mailkit-keys/b.key", group="postfix", mode=0o640, adopt="/var/lib/old-dkim/b.key")
    result = engine.apply(mail, [adopted, fresh])
    assert [c.summary for c in result.changes] == [
        "copy the key /var/lib/old-dkim/a.key to /etc/mailkit-keys/a.key (its DNS record stays right)",
        "generate a 2048-bit RSA key /etc/mailkit-keys/b.key",
    ]
    assert PublicKey(adopted.path).get(mail) == PublicKey("/var/lib/old-dkim/a.key").get(mail)
    snakeoil = PublicKey("/etc/ssl/private/ssl-cert-snakeoil.key").get(mail)
    assert snakeoil and PublicKey(fresh.path).get(mail) not in (None, snakeoil), "root's key was not copied"
    with pytest.raises(UsageError, match=r"c\.key is a symbolic link, not a regular file"):
        engine.plan(mail, [GeneratedKey("/etc/mailkit-keys/c.key", group="postfix", mode=0o640)])
    assert mail.run(["stat", "-c", "%U:%G %a %s", "/etc/shadow"]).stdout == shadow
    mail.run(["rm", "-rf", "/var/lib/old-dkim", "/etc/mailkit-keys"])
