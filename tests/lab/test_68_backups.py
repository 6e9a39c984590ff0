"""Backups, on a finished lab server, with real borg at both ends: the server's key and passphrase are made on the
server (root only, never in a plan), the backup host gets nothing but ciphertext, a second apply changes nothing,
every check of the chapter is green; a wrong backup-host key is refused before anything is made; the server's own key
cannot delete a backup (append-only: what it "deleted" comes back when the backup host's owner undoes the
transactions after the last good one); the restore drill: the server lost, a fresh one restored from the backup host
passes every check of parts 1-4 with nothing left for the guide to change. The append-only test and the chapter's
notebook (its backup and check) on every release (borg 1.2 on bookworm, 1.4 on trixie); the restore drill on
bookworm (the longest test here, in the shorter half of the suite); the rest on trixie.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import mailkit as mk
from mailkit.clients.inventory import take_inventory
from mailkit.core import engine
from mailkit.core.context import host_facts
from mailkit.core.errors import MailkitError, UsageError
from mailkit.core.ssh import Connection
from mailkit.core.values import Password
from mailkit.guide import backups, dane_checks, firewall, guessing, restore, upgrade
from mailkit.guide.chapters import verify_parts
from mailkit.guide.dane import Dane
from mailkit.guide.part1 import Part1
from mailkit.guide.part2 import Part2
from mailkit.guide.part3 import Part3
from mailkit.guide.part4 import Part4
from mailkit.guide.parts import Parts
from mailkit.lab import backup_host
from mailkit.lab.lab import Lab
from mailkit.server.backup_space import BackupSpace
from mailkit.status.inside import backup_rows
from tests.replay import NOTEBOOKS, replay

pytestmark = pytest.mark.lab
MAILBOXES = ["alice@example.org", "bob@example.org", "carol@b.example.org"]
PATH = "mail.example.org"
NOTEBOOK = NOTEBOOKS / "07-backups.ipynb"


@dataclass
class Backed:
    mail: Connection
    outside: Connection
    space: BackupSpace


@pytest.fixture
def trixie(lab: Lab) -> None:
    """Named before ``server``: a test skipped on this release costs no reset."""
    if lab.status()["release"] != "trixie":
        pytest.skip(
            "measured on trixie; the notebook's backup, its check and the append-only test run on every release"
        )


@pytest.fixture
def bookworm(lab: Lab) -> None:
    """As :func:`trixie`, for the drill: bookworm's half of the suite is the shorter."""
    if lab.status()["release"] != "bookworm":
        pytest.skip("the restore drill runs on bookworm (borg 1.2), in the shorter half of the suite")


@pytest.fixture
def server(lab: Lab) -> Iterator[Backed]:
    """A finished server and an empty backup host (whatever ran before)."""
    lab.reset(to_part=4)
    target = mk.target_of("lab:mail")
    mail, outside = target.connect(), target.outside()
    try:
        space = target.backup_space(backup_host.HOST, backup_host.USER, PATH, "", outside=outside)
        yield Backed(mail, outside, space)
    finally:
        mail.close()
        outside.close()


def _set_up(server: Backed) -> None:
    engine.apply(server.mail, backups.install(server.space))
    line = backups.authorization(server.mail, server.space, "mail.example.org")
    backup_host.authorize(server.outside, line)
    backups.initialize(server.mail)


def _on_backup_host(server: Backed, script: str) -> str:
    """``script`` as the backup host's owner (its account, in the repository), not with the server's key."""
    passphrase = server.mail.run(["cat", backups.PASSPHRASE]).stdout  # as the reader keeps it, off the server
    wrapped = f'BORG_PASSPHRASE="$(cat)"; export BORG_PASSPHRASE; cd {backup_host.HOME}/{PATH} && {script}'
    return server.outside.run(["su", backup_host.USER, "-s", "/bin/sh", "-c", wrapped], input=passphrase).stdout


def test_a_backup_is_encrypted_off_the_server_and_every_check_is_green(trixie: None, server: Backed) -> None:
    resources = backups.install(server.space)
    plan = engine.plan(server.mail, resources)
    assert "never shown, never copied" in "".join(c.diff for c in plan.changes)
    engine.apply(server.mail, resources)
    assert not engine.plan(server.mail, resources).changes, "a second apply changes nothing"
    modes = server.mail.run(["stat", "-c", "%n %U %a", backups.KEY, backups.PASSPHRASE, backups.ENV_FILE]).stdout
    assert modes.split("\n")[:3] == [f"{p} root 600" for p in (backups.KEY, backups.PASSPHRASE, backups.ENV_FILE)]
    assert server.mail.run(["stat", "-c", "%a", backups.DIR]).stdout.strip() == "700"

    line = backups.authorization(server.mail, server.space, "mail.example.org")
    assert line.startswith(f'command="borg serve --append-only --restrict-to-repository {PATH}",restrict ssh-ed25519 ')
    backup_host.authorize(server.outside, line)
    assert backups.initialize(server.mail).startswith("the repository is made")
    assert backups.initialize(server.mail) == "the repository is there: no change"
    token = f"backup-{server.mail.run(['openssl', 'rand', '-hex', '8']).stdout.strip()}"
    server.mail.run(["/usr/sbin/sendmail", "alice@example.org"], input=f"Subject: {token}\n\n{token} in plain text\n")
    arrived = f"for i in $(seq 50); do grep -rqs {token} /var/vmail/example.org/alice && exit; sleep 0.2; done; exit 1"
    server.mail.run(["sh", "-c", arrived])
    assert backups.back_up_now(server.mail) == "1 archive in the repository, the newest made just now"

    rows = backups.verify(server.mail, MAILBOXES)
    assert len(rows) == 8 and [r for r in rows if not r.ok] == [], rows
    # The backup host holds ciphertext only: neither the message nor the passphrase is readable there.
    found = server.outside.run(["grep", "-rl", token, f"{backup_host.HOME}/{PATH}"], check=False)
    assert found.exited == 1 and not found.stdout, "the message's text is not at the backup host"
    config = server.outside.run(["cat", f"{backup_host.HOME}/{PATH}/config"]).stdout
    assert "append_only = 0" in config and "key = " in config  # repokey: the key is there, locked by the passphrase


def test_mailkit_check_shows_the_backup_and_turns_red_exactly_where_it_breaks(trixie: None, server: Backed) -> None:
    _set_up(server)
    assert _backup_rows(server) == ["the last backup is less than a day old"], "the timer waits: no backup yet"
    backups.back_up_now(server.mail)
    assert _backup_rows(server) == []
    mail_files = server.mail.run(["sh", "-c", "find /var/vmail -type f | sort | sha256sum"]).stdout
    passphrase = server.mail.run(["cat", backups.PASSPHRASE]).stdout
    # A wrong passphrase (the file changed by hand): a clear error, nothing deleted anywhere.
    server.mail.run(["sh", "-c", f"printf wrong > {backups.PASSPHRASE}"])
    with pytest.raises(MailkitError, match=r"passphrase .* is incorrect"):
        backups.back_up_now(server.mail)
    assert _backup_rows(server) == ["the last backup succeeded", "the last backup is less than a day old"]
    server.mail.run(["sh", "-c", f"cat > {backups.PASSPHRASE}"], input=passphrase)
    backups.back_up_now(server.mail)
    assert _backup_rows(server) == []
    # The backup host stops taking the key (a storage box's key removed): the run fails, and says why.
    authorized = server.outside.run(["cat", f"{backup_host.HOME}/.ssh/authorized_keys"]).stdout
    server.outside.run(["sh", "-c", f": > {backup_host.HOME}/.ssh/authorized_keys"])
    with pytest.raises(MailkitError, match="Permission denied"):
        backups.back_up_now(server.mail)
    assert _backup_rows(server) == ["the last backup succeeded", "the last backup is less than a day old"]
    # The repository gone at the backup host: a clear error, nothing made in its place, nothing deleted here.
    backup_host.authorize(server.outside, authorized.strip())
    server.outside.run(["rm", "-rf", "--", f"{backup_host.HOME}/{PATH}"])
    with pytest.raises(MailkitError, match="does not exist"):
        backups.back_up_now(server.mail)
    assert not server.outside.run(["test", "-e", f"{backup_host.HOME}/{PATH}"], check=False).ok
    assert server.mail.run(["sh", "-c", "find /var/vmail -type f | sort | sha256sum"]).stdout == mail_files
    server.mail.run(["systemctl", "disable", "--now", f"{backups.UNIT}.timer"])
    assert _backup_rows(server)[0] == "a backup runs every night"


def _backup_rows(server: Backed) -> list[str]:
    """The backup rows of ``mailkit check`` that fail (its inside rows, read over SSH)."""
    return [row.name for row in backup_rows(server.mail) if not row.ok]


def test_a_backup_host_with_another_key_is_refused_and_nothing_is_made(trixie: None, server: Backed, lab: Lab) -> None:
    other = lab.host_key("dns").with_suffix(".pub").read_text()  # a real key, but not the backup host's
    impostor = BackupSpace(server.space.host, server.space.user, PATH, other)
    engine.apply(server.mail, backups.install(impostor))
    backup_host.authorize(server.outside, backups.authorization(server.mail, impostor, "mail.example.org"))
    with pytest.raises(MailkitError, match=r"(?i)host key verification failed"):
        backups.initialize(server.mail)
    assert not server.outside.run(["test", "-e", f"{backup_host.HOME}/{PATH}"], check=False).ok


def test_the_servers_key_cannot_delete_a_backup(server: Backed) -> None:
    _set_up(server)
    backups.back_up_now(server.mail)
    backups.back_up_now(server.mail)
    names = [name for name, _ in backups.archives(backups.borg(server.mail, "list", "--json")[1])]
    transactions = server.outside.run(["cat", f"{backup_host.HOME}/{PATH}/transactions"]).stdout
    good = int(re.findall(r"^transaction (\d+),", transactions, re.M)[-1])

    # Someone who broke into the server uses its key: every archive "deleted", then compacted; a shell refused.
    for name in names:
        backups.borg(server.mail, "delete", "--force", f"::{name}")
    backups.borg(server.mail, "compact")
    assert backups.borg(server.mail, "list", "--short")[1].strip() == "", "the server's view: nothing left"
    ssh = ["ssh", "-i", backups.KEY, "-o", f"UserKnownHostsFile={backups.KNOWN_HOSTS}", "-o", "BatchMode=yes"]
    shell = server.mail.run([*ssh, f"borg@{backup_host.HOST}", "rm", "-rf", PATH], check=False)
    assert shell.exited != 0 and server.outside.run(["test", "-d", f"{backup_host.HOME}/{PATH}/data"], check=False).ok

    # The owner at the backup host undoes what came after the last good transaction: every archive is back.
    _on_backup_host(server, backups.undo_after(good))
    listed = _on_backup_host(server, f"borg list --short {backup_host.HOME}/{PATH}")
    assert listed.split() == names
    restored = _on_backup_host(server, f"borg extract --stdout {backup_host.HOME}/{PATH}::{names[0]} etc/dovecot/users")
    assert restored.count("alice@example.org:{SHA512-CRYPT}") == 1


def test_the_restore_drill_brings_the_lost_server_back_whole(bookworm: None, server: Backed, lab: Lab) -> None:
    """The server is lost after its backup; a fresh one with the same name and addresses (the DNS untouched) is
    restored from the backup host: the guide finds nothing to change (its own validating resolver included), every
    check of parts 1-4 passes (the same passwords, the same DKIM key verifying at the receiver, DANE verifying it),
    the mailboxes hold what they held, and a message sent while the server was gone waits at the sender and arrives
    afterwards."""
    target = mk.target_of("lab:mail")
    part1 = Part1(
        "example.org", ["b.example.org"], mailboxes=MAILBOXES, aliases={"info@example.org": ["bob@example.org"]}
    )
    chain, key = target.issue_certificate(part1.hostname)
    part2 = Part2(part1, target.passwords(MAILBOXES, None), "", "")
    part3 = Part3(part1, "s202612", "reject", offline=target.offline)
    part4 = Part4(part3, part2, target.blocklists, offline=target.offline)
    guide = Parts(part1, part2, part3, part4)
    alice = target.passwords(MAILBOXES, None)["alice@example.org"]
    _set_up(server)
    backups.back_up_now(server.mail)
    before = take_inventory(server.outside, "mail.example.org", "alice@example.org", alice)
    kept = Password(server.mail.run(["cat", backups.PASSPHRASE]).stdout)  # in the reader's password manager
    server.mail.close()

    assert lab.reset(keep_dns=True) == "a fresh host, the DNS records kept"
    subject = f"sent while the server was gone {secrets.token_hex(4)}"
    sent = f"From: dana@example.net\nTo: alice@example.org\nSubject: {subject}\n\nqueued at the sender\n"
    server.outside.run(["/usr/sbin/sendmail", "-f", "dana@example.net", "alice@example.org"], input=sent)
    waiting = ""
    for _ in range(50):
        waiting = server.outside.run(["postqueue", "-p"]).stdout
        if "alice@example.org" in waiting and ("refused" in waiting or "timed out" in waiting):
            break
        time.sleep(0.2)
    assert "alice@example.org" in waiting, waiting

    mail = target.connect()
    engine.apply(mail, restore.packages(guide, host_facts(mail)))
    assert mail.run(["ss", "-Hltn", "sport = :25"]).stdout == "", "no Postfix answers before its files are back"
    engine.apply(mail, backups.install(server.space, passphrase=kept))
    backup_host.authorize(server.outside, backups.authorization(mail, server.space, "mail.example.org"))
    assert restore.restore(mail) == "the newest archive is back in place, every service restarted on it"
    facts = host_facts(mail)
    ban = guessing.ban_settings(target.never_ban, "1h", "10m", 5)
    everything = upgrade.final_state(part1, part2, part3, part4, facts, chain, key)
    resolver = Dane.for_target(part2, target).everything()  # part 3 section 13: Unbound, resolv.conf, the next key
    pending = engine.plan(mail, [*everything, *resolver, *firewall.firewall(guide), *guessing.ban_guessers(ban)])
    assert not pending.changes, [c.summary for c in pending.changes]
    verified, said = dane_checks.finger(mail, "example.org")  # through its own resolver, by the TLSA records kept
    assert verified, said
    receiver = target.receiver(server.outside)
    assert receiver is not None
    receiver.ensure()  # the other provider part 3's checks send to, whichever test ran before
    failed = [(r.name, r.detail) for r in verify_parts(guide, [1, 2, 3, 4], mail, server.outside, target) if not r.ok]
    if failed:  # what the queues and logs say, on both sides
        queue = mail.run(["postqueue", "-p"], check=False).stdout[-1500:]
        log = mail.run(["journalctl", "-u", "postfix*", "-n", "30", "--no-pager", "-o", "cat"], check=False).stdout
        other = server.outside.run(["journalctl", "-u", "postfix*", "-n", "30", "--no-pager", "-o", "cat"], check=False)
        pytest.fail(f"{failed}\nqueue: {queue}\nlog: {log[-3000:]}\nreceiver: {other.stdout[-3000:]}")
    after = take_inventory(server.outside, "mail.example.org", "alice@example.org", alice)
    assert not before.keys("INBOX") - after.keys("INBOX"), "every message from before the loss is back"

    server.outside.run(["postqueue", "-f"])
    inbox = ["/var/vmail/example.org/alice/new", "/var/vmail/example.org/alice/cur"]  # message files, not indexes
    for _ in range(100):
        if mail.run(["grep", "-rlq", subject, *inbox], check=False).ok:
            break
        time.sleep(0.2)
    assert mail.run(["grep", "-rl", subject, *inbox], check=False).stdout.count("\n") == 1, "arrived, once"
    # Restoring again onto this server, which has mail now, is refused before anything: nothing laid over it twice.
    messages = ["sh", "-c", "find /var/vmail -type f -path '*/cur/*' -o -type f -path '*/new/*' | wc -l"]
    held = int(mail.run(messages).stdout)
    with pytest.raises(UsageError, match="has mail already"):
        restore.restore(mail)
    assert int(mail.run(messages).stdout) >= held
    assert mail.run(["sh", "-c", "ls -d /var/vmail.before-restore-* 2>/dev/null"], check=False).stdout == ""
    mail.close()


def test_the_chapters_notebook_replays_with_its_stored_outputs(lab: Lab) -> None:
    lab.reset(to_part=4)
    replay([NOTEBOOK])
