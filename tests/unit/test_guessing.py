"""Part 4, section 9 (password guessers banned by fail2ban), the logic only: settings refused before anything is
rendered, the jail file as rendered, fail2ban's answers read as hostile text, and mailkit check's rows when the
ban list cannot be read. The ban itself is proven in the lab (tests/lab/test_66_guessing.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from mailkit.core.errors import MailkitError
from mailkit.core.result import Result
from mailkit.core.templates import Templates
from mailkit.core.values import ValueRejected
from mailkit.guide import guessing, params
from mailkit.guide.chapters import PORTS
from mailkit.remote import source
from mailkit.server import rules
from mailkit.server.bans import SAMPLE, Bans, JailStatus, jail_list, read_bans
from mailkit.status.inside import guessing_rows


class Answers:
    """A server whose fail2ban-client answers as given (by the jail asked for), or raises."""

    def __init__(self, answers: dict[str, Result | Exception]) -> None:
        self.answers = answers
        self.asked: list[list[str]] = []

    def run(self, argv: list[str], **_: object) -> Result:
        self.asked.append(argv)
        answer = self.answers[argv[-1]]
        if isinstance(answer, Exception):
            raise answer
        return answer


def said(stdout: str, exited: int = 0, stderr: str = "") -> Result:
    return Result("fail2ban-client", stdout, stderr, exited)


LISTING = "Status\n|- Number of jail:\t3\n`- Jail list:\tdovecot, postfix-sasl, sshd\n"
CLEAN = SAMPLE.replace("Currently banned:\t1", "Currently banned:\t0").replace("\t198.51.100.69", "\t")


@pytest.mark.parametrize(
    ("never_ban", "bantime", "findtime", "maxretry", "field"),
    [
        (["198.51.100.100\nignoreip = 0.0.0.0/0"], "1h", "10m", 5, "NEVER_BAN"),
        (["0.0.0.0/0 ::/0"], "1h", "10m", 5, "NEVER_BAN"),
        (["mail.example.org"], "1h", "10m", 5, "NEVER_BAN"),
        ([], "1h\nenabled = false", "10m", 5, "BAN_TIME"),
        ([], "forever", "10m", 5, "BAN_TIME"),
        ([], "-1", "10m", 5, "BAN_TIME"),
        ([], "1h", "10 m", 5, "FIND_TIME"),
        ([], "1h", "10m", 0, "MAX_RETRY"),
        ([], "1h", "10m", True, "MAX_RETRY"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_rendered(
    never_ban: list[str], bantime: str, findtime: str, maxretry: int, field: str
) -> None:
    with pytest.raises(ValueRejected) as refused:
        guessing.ban_settings(never_ban, bantime, findtime, maxretry)
    assert refused.value.field == field


def test_the_jail_file_bans_from_every_port_the_parts_serve_and_spares_the_given_addresses() -> None:
    settings = guessing.ban_settings(["198.51.100.100", "2001:db8:100::100", "203.0.113.0/24"], "1h", "10m", 5)
    packages, dovecot_filter, jails = guessing.ban_guessers(settings)
    assert packages.names == ("fail2ban", "python3-systemd")  # type: ignore[attr-defined]
    text = jails.data.decode()  # type: ignore[attr-defined]
    ports = ",".join(str(p) for p in sorted(PORTS))
    assert text.count(f"port = {ports}\n") == 2 and {25, 465, 587, 143, 993, 4190} <= set(PORTS)
    assert "ignoreip = 127.0.0.0/8 ::1 198.51.100.100 2001:db8:100::100 203.0.113.0/24\n" in text
    assert "backend = systemd\n" in text and "banaction = nftables\n" in text
    assert "journalmatch = _SYSTEMD_UNIT=postfix.service _SYSTEMD_UNIT=postfix@-.service\n" in text  # bookworm
    assert "bantime = 1h\n" in text and "findtime = 10m\n" in text and "maxretry = 5\n" in text
    assert [line for line in text.splitlines() if line.startswith("[")] == ["[DEFAULT]", "[postfix-sasl]", "[dovecot]"]
    assert jails.check[-1] == "{candidate}" and jails.services == ("fail2ban",)  # type: ignore[attr-defined]
    assert "%(known/failregex)s" in dovecot_filter.data.decode()  # type: ignore[attr-defined]


def test_the_filter_for_dovecot_2_4_matches_its_failed_login_and_nothing_else() -> None:
    """The regular expression of the .local filter, with fail2ban's <HOST> as an address group (fail2ban itself
    runs it in the lab: test_66 and the notebook's check put real journal lines through it)."""
    import re

    text = Templates().render("fail2ban/dovecot.local", {})
    line = next(x.strip() for x in text.splitlines() if x.strip().startswith("^Login aborted"))
    regex = re.compile(line.replace("<HOST>", r"(?P<host>[0-9a-fA-F.:]+)"))
    failed = (
        "Login aborted: Logged out (auth failed, 1 attempts in 2 secs) (auth_failed): user=<alice@example.org>, "
        "method=PLAIN, rip=198.51.100.69, lip=198.51.100.25, TLS, session=<1Yj+cuNhg8HGM2RD>"
    )
    found = regex.search(failed)
    assert found and found["host"] == "198.51.100.69"
    for harmless in (
        "Login aborted: Logged out (no auth attempts in 0 secs) (no_auth_attempts): user=<>, rip=198.51.100.100, "
        "lip=198.51.100.25, TLS, session=<hfEDb+NhWuLGM2Rk>",
        "Login: user=<alice@example.org>, method=PLAIN, rip=198.51.100.100, lip=198.51.100.25, mpid=7, TLS",
    ):
        assert regex.search(harmless) is None


def test_fail2bans_answers_are_read_as_hostile_text() -> None:
    assert jail_list(LISTING) == ("dovecot", "postfix-sasl", "sshd")
    assert jail_list("Jail list:\tdovecot; rm -rf /") is None
    assert jail_list("") is None
    assert JailStatus.parse(SAMPLE) == JailStatus(0, 7, 1, 1, ("198.51.100.69",))
    assert JailStatus.parse(SAMPLE.replace("198.51.100.69", "<script>alert(1)</script>")) is None
    assert JailStatus.parse(SAMPLE.replace("Total failed:\t7", "Total failed:\tmany")) is None
    assert JailStatus.parse("garbage" * 100_000) is None
    many = " ".join(f"198.51.100.{n}" for n in range(1, 201))
    status = JailStatus.parse(SAMPLE.replace("198.51.100.69", many))
    assert status is not None and len(status.banned) == 200
    verdict = rules.banned_now(Bans(("dovecot",), {"dovecot": status}))
    assert verdict.ok and verdict.detail.startswith("200 addresses: 198.51.100.1 (dovecot)")
    assert verdict.detail.endswith("and 195 more")


def test_check_rows_name_what_runs_and_what_is_banned() -> None:
    server = Answers({"status": said(LISTING), "dovecot": said(SAMPLE), "postfix-sasl": said(CLEAN)})
    running, banned = guessing_rows(server)  # type: ignore[arg-type]
    assert running.ok and running.detail == "jails postfix-sasl, dovecot active"
    assert banned.ok and banned.detail == "1 address: 198.51.100.69 (dovecot)"
    assert ["fail2ban-client", "status", "dovecot"] in server.asked


@pytest.mark.parametrize(
    ("answers", "seen"),
    [
        ({"status": said("", 255, "ERROR Failed to access socket path. Is fail2ban running?")}, "Is fail2ban running?"),
        ({"status": said("", 127, "sh: fail2ban-client: not found")}, "not found"),
        ({"status": said("\x1b[31mgarbage")}, "fail2ban-client status: [31mgarbage"),
        ({"status": MailkitError("the command printed more than 262144 bytes")}, "more than"),
        ({"status": said(LISTING), "dovecot": said("nonsense"), "postfix-sasl": said(CLEAN)}, "dovecot"),
        ({"status": said(LISTING.replace("dovecot, ", "")), "postfix-sasl": said(CLEAN)}, "no jail dovecot"),
    ],
)
def test_a_ban_list_that_cannot_be_read_is_a_failed_row_not_a_crash(
    answers: dict[str, Result | Exception], seen: str
) -> None:
    running, banned = guessing_rows(Answers(answers))  # type: ignore[arg-type]
    assert not running.ok and seen in running.detail
    assert "section 9" in running.fix
    if "no jail" not in seen:
        assert not banned.ok and banned.detail.startswith("cannot read the ban list")


def test_read_bans_asks_only_for_jails_that_run() -> None:
    server = Answers({"status": said(LISTING.replace("dovecot, ", "")), "postfix-sasl": said(CLEAN)})
    bans = read_bans(server, guessing.JAILS)  # type: ignore[arg-type]
    assert bans.jails == ("postfix-sasl", "sshd") and list(bans.status) == ["postfix-sasl"]
    assert all(argv[:2] == ["fail2ban-client", "status"] for argv in server.asked)


def test_params_file_values_for_the_ban_are_validated() -> None:
    values = params.validate({"NEVER_BAN": ["198.51.100.100"], "BAN_TIME": "2h"})
    assert values["NEVER_BAN"] == ["198.51.100.100"] and values["BAN_TIME"] == "2h"
    with pytest.raises(ValueRejected):
        params.validate({"NEVER_BAN": ["my-laptop"]})
    with pytest.raises(ValueRejected):
        params.validate({"BAN_TIME": "1h; reboot"})


def test_the_login_program_tells_a_refused_connection_from_a_wrong_password() -> None:
    """The program the outside host runs, here against a loopback port nothing listens on: 'refused', and with
    stop_when_refused it stops there (no further connection is tried)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens on it
    program = source("tls_logins").replace("993", str(port)).replace("465", str(port))
    request = {
        "host": "127.0.0.1",
        "protocol": "imaps",
        "user": "alice@example.org",
        "source": "127.0.0.1",
        "passwords": ["one", "two", "three"],
        "stop_when_refused": True,
        "timeout": 5,
    }
    done = subprocess.run(
        [sys.executable, "-c", program], input=json.dumps(request), capture_output=True, text=True, timeout=60
    )
    attempts = json.loads(done.stdout)["attempts"]
    assert [a["outcome"] for a in attempts] == ["refused"]
    request.update(stop_when_refused=False, at_once=True)
    done = subprocess.run(
        [sys.executable, "-c", program], input=json.dumps(request), capture_output=True, text=True, timeout=60
    )
    assert [a["outcome"] for a in json.loads(done.stdout)["attempts"]] == ["refused"] * 3
    assert "one" not in done.stdout and "two" not in done.stdout  # passwords are never echoed back


def test_the_jails_check_reads_only_lines_logged_after_its_own_logins() -> None:
    from mailkit.guide.guessing import _journal_mark, _line_after

    journal = Answers(
        {
            "+%s.%6N": said("1796495895.123456\n"),
            "journalmatch": said("_SYSTEMD_UNIT=dovecot.service\n"),
            "_SYSTEMD_UNIT=dovecot.service": said("Dec 05 18:40:01 mail dovecot[70]: imap-login: auth failed\n"),
        }
    )
    mark = _journal_mark(journal)  # type: ignore[arg-type]
    assert mark == "@1796495895.123456"
    line = _line_after(journal, mark, "dovecot", "auth failed", seconds=0)  # type: ignore[arg-type]
    assert line.endswith("imap-login: auth failed")
    reading = journal.asked[-1]
    assert reading[reading.index("--since") + 1] == mark
    # Nothing logged since the mark: no line, never an older one.
    journal.answers["_SYSTEMD_UNIT=dovecot.service"] = said("")
    assert _line_after(journal, mark, "dovecot", "auth failed", seconds=0) == ""  # type: ignore[arg-type]
    # A clock that answers something else is no mark, and then nothing is read at all.
    journal.answers["+%s.%6N"] = said("1796495895; rm -rf /\n")
    assert _journal_mark(journal) == ""  # type: ignore[arg-type]
    asked = len(journal.asked)
    assert _line_after(journal, "", "dovecot", "auth failed", seconds=0) == ""  # type: ignore[arg-type]
    assert len(journal.asked) == asked + 1, "only the jail's journal matches were asked for"
