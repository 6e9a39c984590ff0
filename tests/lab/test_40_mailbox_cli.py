"""`mailkit mailbox` on the lab's mail host after parts 1 and 2 (left by the notebook replay)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mailkit.clients.remote_client import run_client
from mailkit.lab.lab import Lab
from mailkit.lab.lab_target import lab_connection

pytestmark = pytest.mark.lab

DAVE = "dave@example.org"
FIRST, SECOND = "dave's first long password", "dave's second long password"


def _mailkit(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MAILKIT_HOST"}
    return subprocess.run(
        [sys.executable, "-m", "mailkit.cli", "mailbox", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )


def _imap_login(password: str, user: str = DAVE) -> str:
    with lab_connection("outside") as outside:
        seen = run_client(
            outside,
            {
                "protocol": "imap",
                "host": "mail.example.org",
                "port": 993,
                "mode": "tls",
                "user": user,
                "password": password,
            },
        )
    return seen.get("login", ["?"])[0]


def _vmailbox() -> str:
    with lab_connection("mail") as mail:
        return mail.read("/etc/postfix/vmailbox").decode()


@pytest.fixture(scope="module")
def guide_applied(lab: Lab) -> Lab:
    """The mail host at the end of part 2 (its snapshot, or built now and kept)."""
    lab.reset(to_part=2)
    return lab


def test_list_shows_the_guide_mailboxes_in_agreement(guide_applied: Lab) -> None:
    listed = _mailkit("list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    for address in ("alice@example.org", "bob@example.org", "carol@b.example.org"):
        assert address in listed.stdout
    assert "FAIL" not in listed.stdout


def test_add_passwd_remove_round_trip(guide_applied: Lab) -> None:
    added = _mailkit("add", DAVE, "--password-stdin", stdin=FIRST + "\n")
    assert added.returncode == 0, added.stderr
    assert "applied" in added.stdout and FIRST not in added.stdout + added.stderr
    assert _imap_login(FIRST) == "OK"
    with lab_connection("mail") as mail:
        files = mail.run(["sh", "-c", "sha256sum /etc/postfix/vmailbox* /etc/dovecot/users"]).stdout
        again = _mailkit("add", DAVE, "--password-stdin", stdin=SECOND + "\n")
        assert again.returncode == 1, again.stdout + again.stderr
        assert "exists already" in again.stderr and "mailbox passwd" in again.stderr
        assert len(again.stderr.strip().splitlines()) == 1
        assert mail.run(["sh", "-c", "sha256sum /etc/postfix/vmailbox* /etc/dovecot/users"]).stdout == files
    assert _imap_login(FIRST) == "OK", "the password stays what it was"

    changed = _mailkit("passwd", DAVE, "--password-stdin", stdin=SECOND + "\n")
    assert changed.returncode == 0 and SECOND not in changed.stdout + changed.stderr
    assert _imap_login(FIRST) == "NO"
    assert _imap_login(SECOND) == "OK"

    removed = _mailkit("remove", DAVE)
    assert removed.returncode == 0, removed.stderr
    assert _imap_login(SECOND) == "NO"
    assert DAVE not in _vmailbox()
    with lab_connection("mail") as mail:
        assert mail.run(["test", "-d", "/var/vmail/example.org/dave"], check=False).ok, "mail is never deleted"
    assert _mailkit("list").returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("add", "not an address", "--password-stdin"), "exactly one '@'"),
        (("add", "eve@unknown.example.net", "--password-stdin"), "virtual_mailbox_domains"),
        (("add", "eve@example.org", "--password-stdin"), "at least 12"),
        (("passwd", "nobody@example.org", "--password-stdin"), "not a mailbox"),
    ],
)
def test_bad_input_is_one_error_line_and_changes_nothing(guide_applied: Lab, args, message) -> None:
    before = _vmailbox()
    password = "short\n" if "eve@example.org" in args else "a perfectly long password\n"
    result = _mailkit(*args, stdin=password)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert _vmailbox() == before


def test_ten_concurrent_adds_all_land(guide_applied: Lab) -> None:
    from concurrent.futures import ThreadPoolExecutor

    users = [f"load{i:02}@example.org" for i in range(10)]

    def add(address: str) -> subprocess.CompletedProcess[str]:
        return _mailkit("add", address, "--password-stdin", stdin=f"{address} long password\n")

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(add, users))
    failed = {users[i]: r.stdout + r.stderr for i, r in enumerate(results) if r.returncode != 0}
    assert not failed, failed
    table = _vmailbox()
    assert all(address in table for address in users)
    for address in users[::3]:
        assert _imap_login(f"{address} long password", address) == "OK", address
    for address in users:
        assert _mailkit("remove", address).returncode == 0
    assert _mailkit("list").returncode == 0


def test_a_new_password_works_even_when_the_file_keeps_its_size_and_second(guide_applied: Lab) -> None:
    """Dovecot re-reads a passwd-file only when its mtime (seconds) or size changes: a new hash of the same length
    within the same second would go unseen. The apply reloads Dovecot, so this cannot happen; the test makes the
    same-second case on purpose by putting the old mtime back right after the change."""
    erin = "erin@example.org"
    assert _mailkit("add", erin, "--password-stdin", stdin=FIRST + "\n").returncode == 0
    try:
        assert _imap_login(FIRST, erin) == "OK"  # Dovecot has read the file now
        with lab_connection("mail") as mail:
            before = mail.run(["stat", "-c", "%Y %s", "/etc/dovecot/users"]).stdout.split()
            changed = _mailkit("passwd", erin, "--password-stdin", stdin=SECOND + "\n")
            assert changed.returncode == 0 and "reloaded: dovecot" in changed.stdout, changed.stdout + changed.stderr
            mail.run(["touch", "-d", f"@{before[0]}", "/etc/dovecot/users"])
            after = mail.run(["stat", "-c", "%Y %s", "/etc/dovecot/users"]).stdout.split()
        assert after == before, "same second, same size: what Dovecot's own check would not notice"
        assert _imap_login(FIRST, erin) == "NO"
        assert _imap_login(SECOND, erin) == "OK"
    finally:
        assert _mailkit("remove", erin).returncode == 0
