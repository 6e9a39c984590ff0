"""Part 4's new kinds of resource on a real host: compiled Sieve scripts and a secret made on the host.

Runs after the notebooks (test_30), so the mail host has parts 1 to 4 applied.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from mailkit.core import engine
from mailkit.core.context import host_facts
from mailkit.core.engine import ApplyError
from mailkit.core.resources import Directory, SieveScript
from mailkit.core.services import RSPAMD_MILTER_ANSWERS
from mailkit.core.ssh import Connection
from mailkit.guide import part4_checks
from mailkit.guide.part1 import Part1
from mailkit.guide.part2 import Part2
from mailkit.guide.part3 import Part3
from mailkit.guide.part4 import CONTROLLER_PASSWORD, SIEVE_DIR, Part4
from mailkit.lab.lab import Lab
from mailkit.lab.lab_target import lab_connection, lab_passwords

pytestmark = pytest.mark.lab
SCRIPT = f"{SIEVE_DIR}/spam-to-junk.sieve"


@pytest.fixture(scope="module")
def mail(finished: Lab) -> Iterator[Connection]:
    conn = lab_connection("mail")
    yield conn
    conn.close()


def _sums(mail: Connection, *paths: str) -> str:
    return mail.run(["sha256sum", *paths]).stdout


def test_a_sieve_script_that_does_not_compile_never_goes_live(mail: Connection) -> None:
    binary = SCRIPT.replace(".sieve", ".svbin")
    before = _sums(mail, SCRIPT, binary)
    broken = SieveScript(SCRIPT, 'require ["fileinto"];\nif header :is "X-Spam" "Yes" { fileinto "Junk" }\n')
    with pytest.raises(ApplyError) as failed:
        engine.apply(mail, [broken])
    assert "spam-to-junk" in str(failed.value)
    assert _sums(mail, SCRIPT, binary) == before, "the live script and its binary are untouched"
    leftovers = mail.run(["sh", "-c", f"ls -A {SIEVE_DIR} | grep mailkit || true"]).stdout.split()
    assert leftovers == [], "no candidate left behind"


def test_part4_applied_again_changes_nothing_and_keeps_the_controller_password(mail: Connection) -> None:
    part1 = Part1(mailboxes=("alice@example.org",))
    part4 = Part4(Part3(part1), Part2(part1), offline=True)
    before = _sums(mail, CONTROLLER_PASSWORD)
    result = engine.apply(mail, part4.filter_config(host_facts(mail)))
    assert not result.changed
    assert _sums(mail, CONTROLLER_PASSWORD) == before, "an existing password is never replaced"
    assert mail.run(["stat", "-c", "%U:%G %a", CONTROLLER_PASSWORD]).stdout.strip() == "root:_rspamd 640"
    stored = mail.run(["cat", CONTROLLER_PASSWORD]).stdout
    assert stored.startswith('password = "$') and stored.rstrip().endswith('";'), "a hash, never a plain password"
    assert stored.split('"')[1] not in str(engine.plan(mail, part4.filter_config(host_facts(mail))))


def test_parents_of_a_new_directory_can_be_entered_by_everyone(mail: Connection) -> None:
    top = "/usr/local/lib/mailkit-test"
    try:
        engine.apply(mail, [Directory(f"{top}/a/b", owner="root", group="root", mode=0o750)])
        modes = mail.run(["stat", "-c", "%a", top, f"{top}/a", f"{top}/a/b"]).stdout.split()
        assert modes == ["755", "755", "750"]
    finally:
        mail.run(["rm", "-rf", "--", top])


def test_the_greylisting_demo_runs_again_on_the_same_server_and_rspamd_restarts_with_each_change(
    mail: Connection,
) -> None:
    """Section 7's demo twice on one server (a sender, recipient and network that waited once are let in for a
    day: each run needs its own sender), and rspamd restarted after it has scanned mail: its milter answers."""
    user = "alice@example.org"
    part1 = Part1(mailboxes=(user,))
    part2 = Part2(part1, lab_passwords([user]))
    part4 = Part4(Part3(part1), part2, offline=True)
    demo = dataclasses.replace(part4, greylisting=True, greylist_score=0.5, greylist_delay="5s")
    facts = host_facts(mail)
    on = engine.apply(mail, demo.filter_config(facts))
    assert "rspamd" in on.reloaded
    try:
        with lab_connection("outside") as outside:
            runs = [part4_checks.greylisting(demo, part2, outside, delay_seconds=5) for _ in range(2)]
    finally:
        off = engine.apply(mail, part4.filter_config(facts))
    for run in runs:
        assert [r.ok for r in run] == [True, True, True], [(r.name, r.detail) for r in run]
    # Restarted after six messages were scanned: no worker of the old rspamd left behind, the unit not failed.
    assert "rspamd" in off.reloaded
    assert mail.run(["systemctl", "show", "-p", "Result", "--value", "rspamd"]).stdout.strip() == "success"
    assert mail.run(["sh", "-c", RSPAMD_MILTER_ANSWERS], check=False).exited == 0, "rspamd's milter answers"
    assert not engine.apply(mail, part4.filter_config(facts)).changed
