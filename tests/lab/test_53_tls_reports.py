"""TLS-RPT reports, end to end: the lab's receiver, as a provider that reports TLS (Postfix 3.10 with libtlsrpt and
sys4's tlsrpt-reporter, sending by DANE through a validating resolver of its own), sends mail to example.org and
reports its handshakes to the address in the record the guide published (``_smtp._tls``: postmaster@, alice's
mailbox). ``mailkit check``'s row for the reports reads them on the server: green for DANE handshakes that
succeeded; red, naming the reporter, the policy and the failure, once the server's TLSA records named other keys
while the receiver sent (its mail deferred, then delivered when the records were right again).

On trixie only: bookworm's Postfix (3.7) cannot report TLS.
"""

from __future__ import annotations

import secrets
import shlex
import time
from collections.abc import Iterator

import pytest

from mailkit.core.ssh import Connection
from mailkit.domain.records import lookup_at
from mailkit.domain.reports import Report, TlsReport
from mailkit.domain.tlsa import tlsa_name
from mailkit.lab import receiver, tls_reporter
from mailkit.lab.dns import NAMESERVER
from mailkit.lab.lab import Lab
from mailkit.lab.lab_target import lab_connection
from mailkit.lab.layout import HOSTS
from mailkit.status.run import check_server
from tests.lab.postfix_log import wait_for_status
from tests.lab.reports_at_home import ALICE_MAILDIR, reports_at_home

pytestmark = pytest.mark.lab

MAIL = HOSTS["mail"]
ROW = "tls-rpt / TLS-RPT reports of example.org say senders reach you over TLS"
SENT = ["sent report for example.org to mailto:postmaster@example.org"]


@pytest.fixture(scope="module")
def outside(lab: Lab, request: pytest.FixtureRequest) -> Iterator[Connection]:
    if lab.status()["release"] == "bookworm":
        pytest.skip("bookworm's Postfix (3.7) cannot report TLS: tested on trixie")
    request.getfixturevalue("finished")  # the guide's finished server: TLSA (section 13), _smtp._tls (section 14)
    conn = lab_connection("outside")
    try:
        receiver.ensure(conn, lab)
        tls_reporter.ensure(conn, lab.root_anchor())
        tls_reporter.send_reports(conn)  # what came before is reported now: the tests' reports hold only their own
        yield conn
    finally:
        tls_reporter.remove(conn)
        conn.close()


def _send(outside: Connection, subject: str) -> None:
    body = f"From: dana@example.net\nTo: alice@example.org\nSubject: {subject}\n\nfrom the receiver\n"
    outside.run(["/usr/sbin/sendmail", "-f", "dana@example.net", "alice@example.org"], input=body)


def _status(outside: Connection, since: int, wanted: str, seconds: float = 60, *, flush: bool = False) -> str:
    """The receiver's first log line since ``since`` saying a message to alice went with ``wanted`` status."""
    return wait_for_status(outside, since, "alice@example.org", wanted, seconds, flush=flush)


def _tls_reports_at_home(since: int) -> list[TlsReport]:
    """The receiver's TLS-RPT reports for example.org that reached alice since ``since``."""
    found = reports_at_home("Report Domain: example.org Submitter: example.net", _is_tls, since)
    return [r for r in found if isinstance(r, TlsReport)]


def _is_tls(report: Report) -> bool:
    return isinstance(report, TlsReport)


def _tlsa_changed(lab: Lab, outside: Connection, name: str, values: list[str]) -> None:
    """``name``'s TLSA records changed at the lab's registrar and served (``set_dns_records`` waits until the zone,
    signed anew, serves them), then the receiver made to forget what it knew under the old ones, as it has some time
    after a change: its resolver's answers (a 10 s cache), and Postfix's cached connections and TLS sessions (ci62
    saw a message sent over a session verified a few seconds before, under the old records, and no handshake to
    report)."""
    lab.set_dns_records(name, "TLSA", values)
    forget = "systemctl restart unbound && systemctl stop postfix && rm -f /var/lib/postfix/smtp_scache* && "
    outside.run(["sh", "-c", forget + "systemctl start postfix"])


#: What the collector counted: its tables in the day it holds and in the day before (for a failure's message).
_COUNTED = """import sqlite3, sys
for path in sys.argv[1:]:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        for table in ("finalresults", "failures"):
            print(path, table, list(db.execute(f"SELECT * FROM {table}")))
    except sqlite3.Error as exc:
        print(path, exc)
"""


def _receiver_said(outside: Connection, since: int) -> str:
    """What the receiver's Postfix, resolver and TLS reporter logged since ``since`` (the reporter's settings left
    out), and what the collector counted (for a failure's message)."""
    db = tls_reporter.COLLECTD_DB
    script = (
        f"journalctl -u 'postfix*' -u tlsrpt-collectd -u tlsrpt-reportd -u unbound --since @{since} "
        "-o short-monotonic --no-pager | grep -v 'CONFIG from' | tail -n 80; "
        f"python3 -c {shlex.quote(_COUNTED)} {db} {db}.yesterday"
    )
    return outside.run(["sh", "-c", script], check=False).stdout


def _row() -> tuple[bool, str]:
    report = check_server("lab:mail", vantage="lab:outside")
    row = next(r for r in report.rows if r.key == ROW)
    return row.ok, row.detail


def test_the_receivers_tls_report_comes_home_and_mailkit_check_reads_it(outside: Connection) -> None:
    start = int(time.time())
    _send(outside, f"tls report {secrets.token_hex(4)}")
    sent = _status(outside, start, "sent")
    assert f"relay={MAIL.fqdn}" in sent, sent
    assert tls_reporter.send_reports(outside) == SENT
    found = _tls_reports_at_home(start)
    assert len(found) == 1, found
    policy = found[0].policies[0]
    # DANE's policy is the MX host's (its TLSA records); the report is example.org's, sent to its _smtp._tls address.
    assert (found[0].reporter, policy.kind, policy.domain) == ("example.net", "tlsa", MAIL.fqdn), found
    assert policy.successful >= 1 and policy.failed == 0, policy
    ok, detail = _row()
    assert ok and detail.endswith("none failed (example.net)"), detail


def test_the_report_row_turns_red_when_a_sender_could_not_verify_the_server(outside: Connection, lab: Lab) -> None:
    """The server's TLSA records naming other keys while the receiver sends: its message is deferred (DANE: not sent
    without the right key, and never in the clear), the handshake reported as a failure."""
    name = tlsa_name(MAIL.fqdn)
    before = list(lookup_at(NAMESERVER.address)(name, "TLSA"))
    start = int(time.time())
    wrong = ["3 1 1 " + "ab" * 32, "3 1 1 " + "cd" * 32]
    try:
        _tlsa_changed(lab, outside, name, wrong)
        _send(outside, f"tls failure {secrets.token_hex(4)}")
        deferred = _status(outside, start, "deferred", 120)
        assert "certificate" in deferred.lower() or "tlsa" in deferred.lower(), deferred
        # A TLSA lookup that failed (the receiver's resolver) defers the message too, but with no handshake tried
        # there is nothing to report: say so here rather than as a report without a failure below.
        assert "lookup error" not in deferred.lower(), f"the receiver's resolver failed, no handshake: {deferred}"
    finally:
        _tlsa_changed(lab, outside, name, before)
    try:
        # The deferred message goes now that the records are right again (once the lab's DNS has signed them anew).
        _status(outside, start, "sent", flush=True)
        assert tls_reporter.send_reports(outside) == SENT
        found = _tls_reports_at_home(start)
        failed = [p for r in found for p in r.policies if p.failed]
        assert failed and failed[0].kind == "tlsa" and failed[0].failures, (
            f"no failure reported: {found}\nthe deferral: {deferred}\n"
            f"the receiver said:\n{_receiver_said(outside, start)}"
        )
        ok, detail = _row()
        failing = f"senders FAILED to reach you over TLS: example.net (tlsa {MAIL.fqdn}): "
        assert not ok and detail.startswith(failing), detail
    finally:  # the failing report goes: a later check of this server must not find it for the next 8 days
        with lab_connection("mail") as mail:
            mail.run(["sh", "-c", f"find {ALICE_MAILDIR} -type f -newermt @{start - 1} -exec grep -l "
                      "'^Subject: Report Domain: example.org' {} + | xargs -r rm -f --; "
                      "doveadm force-resync -u alice@example.org '*'"])  # fmt: skip
