"""DMARC aggregate reports, end to end: the lab's receiver (OpenDMARC, another provider's software, with Debian's
opendmarc-import and opendmarc-reports over MariaDB) reports what it saw of example.org to the address in the
record the guide published (``rua=mailto:postmaster@example.org``, alice's mailbox), and ``mailkit reports`` reads
the report at home: the server's own mail passes, a forger's fails and is marked OTHER. ``mailkit check``'s row for
the reports names the forger and stays green; it turns red once the server's own mail fails (its DKIM key and SPF
record taken away while it sends).

On bookworm only: the same opendmarc (1.4.2) runs on both releases, and bookworm's half of the suite is the shorter.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator

import pytest

from mailkit.core.ssh import Connection
from mailkit.domain.records import lookup_at
from mailkit.domain.reports import DmarcReport, Report, source_table, sources
from mailkit.lab import receiver
from mailkit.lab.dns import NAMESERVER
from mailkit.lab.lab import Lab
from mailkit.lab.lab_target import lab_connection
from mailkit.lab.layout import HOSTS
from mailkit.status.inside import DKIM_SIGNING
from mailkit.status.run import check_server
from tests.lab.postfix_log import wait_for_status
from tests.lab.reports_at_home import ALICE_MAILDIR, reports_at_home

pytestmark = pytest.mark.lab

MAIL, OUTSIDE = HOSTS["mail"], HOSTS["outside"]
DANA = "dana@example.net"
#: A spammer on the outside host, sending as alice straight to the receiver (the receiver's DMARC check fails it).
FORGERY = """
import smtplib, sys
s = smtplib.SMTP(sys.argv[2], 25, local_hostname=sys.argv[1], timeout=30)
s.starttls()
s.ehlo(sys.argv[1])
try:
    s.sendmail("forger@example.net", ["dana@example.net"],
               b"From: alice@example.org\\r\\nTo: dana@example.net\\r\\nSubject: " + sys.argv[3].encode()
               + b"\\r\\n\\r\\nA forgery.\\r\\n")
    print("accepted")
except smtplib.SMTPDataError as refused:
    print(refused.smtp_code)
s.quit()
"""


@pytest.fixture(scope="module")
def outside(lab: Lab, request: pytest.FixtureRequest) -> Iterator[Connection]:
    if lab.status()["release"] != "bookworm":
        pytest.skip("the receiver's reports are tested on bookworm (the same opendmarc as trixie)")
    request.getfixturevalue("finished")  # the guide's finished server, with its DMARC record's rua
    conn = lab_connection("outside")
    receiver.ensure(conn, lab)
    receiver.send_reports(conn)  # what earlier tests left is reported now: the test's report holds only its own
    yield conn
    conn.close()


def _reports_at_home(since: int, seconds: float = 60) -> list[Report]:
    """The DMARC reports for example.org that reached alice made after ``since``: their period ends then or later (an
    earlier report, delivered late, is not this one)."""

    def made_since(report: Report) -> bool:
        return isinstance(report, DmarcReport) and report.end >= since

    return reports_at_home("Report Domain: example.org", made_since, since, seconds)


def _next_second() -> int:
    """The next whole second, once it has come: a report made before it (the last one, sent this very second) ends
    before it, one made after ends at it or later."""
    start = int(time.time()) + 1
    time.sleep(max(0.0, start - time.time()) + 0.05)
    return start


def test_the_receivers_report_comes_home_and_names_the_forger(outside: Connection) -> None:
    token = f"report test {secrets.token_hex(4)}"
    start = _next_second()
    with lab_connection("mail") as mail:  # the server's own mail: signed, from its own address
        body = f"From: alice@example.org\nTo: {DANA}\nSubject: {token}\n\nfrom the mail host\n"
        mail.run(["/usr/sbin/sendmail", "-f", "alice@example.org", DANA], input=body)
    assert receiver.newest(outside, DANA, lambda m: m["Subject"] == token, seconds=60), "the server's mail arrived"
    forged = outside.run(["python3", "-c", FORGERY, OUTSIDE.fqdn, OUTSIDE.address, f"{token} forged"]).stdout
    assert forged.strip() in ("accepted", "550"), forged  # delivered under p=none, refused under p=reject

    sent = receiver.send_reports(outside)
    assert [line.split(" (", 1)[0] for line in sent] == ["sent report for example.org to postmaster@example.org"]
    found = _reports_at_home(start)
    assert len(found) == 1, found
    report = found[0]
    assert (report.domain, report.reporter) == ("example.org", "example.net")
    seen = sources(found, ours=[MAIL.address, MAIL.address6])
    print(source_table(seen))
    ours = [s for s in seen if s.yours]
    forgers = [s for s in seen if s.address in (OUTSIDE.address, OUTSIDE.address6)]  # over IPv4 or IPv6
    assert ours and sum(s.passed for s in ours) >= 1 and all(s.failed == 0 for s in ours), seen
    assert forgers and all(not s.yours and s.failed >= 1 and s.passed == 0 for s in forgers), seen
    assert seen[0] in forgers, "a failing source comes first"
    ok, detail = _report_row()  # mailkit check reads the same reports on the server, through Dovecot
    assert ok and "others sending as you failed: " in detail and OUTSIDE.address in detail, detail


def _report_row(domain: str = "example.org") -> tuple[bool, str]:
    report = check_server("lab:mail", vantage="lab:outside")
    row = next(r for r in report.rows if r.key == f"dmarc / DMARC reports of {domain} say your mail passes")
    return row.ok, row.detail


def test_mailkit_checks_report_row_turns_red_when_the_servers_own_mail_fails(outside: Connection, lab: Lab) -> None:
    receiver.send_reports(outside)  # what came before this test is reported and left behind
    with lab_connection("mail") as mail:
        selector = re.search(r'selector\s*=\s*"([a-z0-9-]+)"', mail.run(["cat", DKIM_SIGNING]).stdout)
    assert selector, "the finished server signs"
    names = {f"{selector[1]}._domainkey.example.org": "TXT", "example.org": "TXT"}
    lookup = lookup_at(NAMESERVER.address)
    before = {name: list(lookup(name, rtype)) for name, rtype in names.items()}
    token = f"failing {secrets.token_hex(4)}"
    start = _next_second()
    try:  # the server's key and SPF gone: its next message fails DKIM and SPF at the receiver, so DMARC fails
        lab.set_dns_records(f"{selector[1]}._domainkey.example.org", "TXT", [])
        lab.set_dns_records("example.org", "TXT", ['"v=spf1 -all"'])
        lab.forget_receiver_cache()  # its verifiers keep a key for minutes
        with lab_connection("mail") as mail:
            body = f"From: alice@example.org\nTo: {DANA}\nSubject: {token}\n\nfrom the mail host\n"
            mail.run(["/usr/sbin/sendmail", "-f", "alice@example.org", DANA], input=body)
            wait_for_status(mail, start, DANA)  # refused under p=reject: the verdict is recorded all the same
    finally:
        for name, rtype in names.items():
            lab.set_dns_records(name, rtype, before[name])
        lab.forget_receiver_cache()
    try:
        sent = receiver.send_reports(outside)
        assert [line.split(" (", 1)[0] for line in sent] == ["sent report for example.org to postmaster@example.org"]
        _reports_at_home(start)  # arrived
        ok, detail = _report_row()
        assert not ok and detail.startswith("your mail FAILED at example.net"), detail
    finally:  # the failing report goes: a later check of this server must not find it for the next 8 days
        with lab_connection("mail") as mail:
            mail.run(["sh", "-c", f"find {ALICE_MAILDIR} -type f -newermt @{start - 5} -exec grep -l "
                      "'^Subject: Report Domain: example.org' {} + | xargs -r rm -f --; "
                      "doveadm force-resync -u alice@example.org '*'"])  # fmt: skip
