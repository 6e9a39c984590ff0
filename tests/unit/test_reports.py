"""DMARC aggregate and TLS-RPT reports read at home: as receivers send them (gzip, zip, attached to a message, with
RFC 9990's namespace or RFC 7489's none), and as a forger or a broken receiver might (bombs, entities, nonsense)."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailkit.domain import reports
from mailkit.domain.reports import (
    SAMPLE,
    DmarcReport,
    ReportRefused,
    TlsReport,
    dmarc_report,
    read_report,
    reports_in_message,
    source_table,
    sources,
    tls_lines,
)

OLD_STYLE = SAMPLE.replace(b' xmlns="urn:ietf:params:xml:ns:dmarc-2.0"', b"").replace(
    b"receiver.example.net", b"mail.other.example"
)
TLS = {
    "organization-name": "receiver.example.net",
    "date-range": {"start-datetime": "2026-12-05T00:00:00Z", "end-datetime": "2026-12-05T23:59:59Z"},
    "contact-info": "tls-reports@receiver.example.net",
    "report-id": "t-1",
    "policies": [
        {
            "policy": {"policy-type": "sts", "policy-domain": "example.org", "mx-host": ["mail.example.org"]},
            "summary": {"total-successful-session-count": 40, "total-failure-session-count": 2},
            "failure-details": [
                {"result-type": "certificate-expired", "receiving-mx-hostname": "mail.example.org",
                 "failed-session-count": 2}
            ],
        }
    ],
}  # fmt: skip


def _message(*attachments: tuple[bytes, str, str]) -> bytes:
    message = EmailMessage()
    message["From"] = "noreply-dmarc@receiver.example.net"
    message["To"] = "postmaster@example.org"
    message["Subject"] = "Report Domain: example.org Submitter: receiver.example.net"
    message.set_content("This is a DMARC aggregate report.")
    for data, kind, name in attachments:
        main, sub = kind.split("/")
        message.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return message.as_bytes()


def _zip(data: bytes, *names: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            archive.writestr(name, data)
    return buffer.getvalue()


def test_reports_come_out_of_messages_however_they_are_packed() -> None:
    raw = _message(
        (gzip.compress(SAMPLE), "application/gzip", "receiver.example.net!example.org!1764979200!1765065599.xml.gz"),
        (_zip(OLD_STYLE, "report.xml"), "application/zip", "mail.other.example!example.org!1!2.zip"),
        (gzip.compress(json.dumps(TLS).encode()), "application/tlsrpt+gzip", "tls.json.gz"),
    )
    found = reports_in_message(raw)
    assert [type(r) for r in found] == [DmarcReport, DmarcReport, TlsReport]
    assert [r.reporter for r in found] == ["receiver.example.net", "mail.other.example", "receiver.example.net"]
    assert tls_lines(found) == [
        "receiver.example.net: example.org (sts): 40 ok, 2 failed (certificate-expired at mail.example.org: 2)"
    ]
    assert reports_in_message(_message()) == [], "a message with no report carries none"


def test_sources_add_up_over_reports_and_other_senders_come_first() -> None:
    found = sources([dmarc_report(SAMPLE), dmarc_report(OLD_STYLE)], ours=["198.51.100.25"])
    assert [(s.address, s.messages, s.passed, s.failed, s.yours) for s in found] == [
        ("198.51.100.199", 2, 0, 2, False),
        ("198.51.100.25", 6, 6, 0, True),
    ]
    assert found[0].reporters == ("mail.other.example", "receiver.example.net")
    table = source_table(found).splitlines()
    assert "OTHER" in table[1] and "yours" in table[2] and source_table([]) == "no DMARC report rows"
    row = dmarc_report(SAMPLE).rows[1]
    assert row.details == ("spf=forger.example.net:pass",) and not row.passed, "SPF passed, but not aligned"


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b'<?xml version="1.0"?><!DOCTYPE f [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><feedback>&b;</feedback>',
         "declares a document type or entities"),
        (gzip.compress(b"<feedback>" + b" " * (reports.MAX_UNPACKED + 10) + b"</feedback>"), "unpacks to over"),
        (_zip(SAMPLE, "a.xml", "b.xml"), "a zip of 2 files"),
        (SAMPLE.replace(b"198.51.100.25", b"localhost; rm -rf /"), "source_ip is not an address"),
        (SAMPLE.replace(b"<count>3</count>", b"<count>-3</count>"), "row/count is not a number"),
        (SAMPLE.replace(b"<domain>example.org</domain><p>", b"<domain>exa mple</domain><p>"), "not a domain name"),
        (b"<html><body>not a report</body></html>", "not a DMARC report's <feedback>"),
        (b"<feedback><unclosed>", "not well-formed XML"),
        (b"\x1f\x8b\x08\x00garbage", "not gzip"),
        (b'{"policies": [1]}', "without its policy and summary"),
        (b"MZ\x90\x00", "neither a DMARC report"),
    ],
)  # fmt: skip
def test_what_is_not_a_report_or_unsafe_to_read_is_refused_with_a_reason(data: bytes, said: str) -> None:
    with pytest.raises(ReportRefused, match=None) as refused:
        read_report(data, "r")
    assert said in str(refused.value) and "\n" not in str(refused.value)


def test_too_many_rows_and_too_big_a_message_are_refused() -> None:
    row = SAMPLE.split(b"<record>")[1].split(b"</record>")[0]
    many = SAMPLE.split(b"<record>")[0] + b"".join(b"<record>" + row + b"</record>" for _ in range(20_001))
    with pytest.raises(ReportRefused, match="over 20000 rows"):
        dmarc_report(many + b"</feedback>")
    with pytest.raises(ReportRefused, match="a message of over"):
        reports_in_message(b"x" * (reports.MAX_MESSAGE + 1))


def test_a_strangers_text_is_shown_flat_and_cut() -> None:
    hostile = SAMPLE.replace(b"<org_name>receiver.example.net", "<org_name>\u202eliveE\n".encode() + b"x" * 500)
    report = dmarc_report(hostile)
    assert "\u202e" not in report.reporter and "\n" not in report.reporter and len(report.reporter) <= 80
    assert report.rows[0].disposition == "none" and report.rows[0].dkim == "pass"
    odd = SAMPLE.replace(b"<dkim>pass</dkim><spf>pass", b"<dkim>PASSED!</dkim><spf>pass", 1)
    assert dmarc_report(odd).rows[0].dkim == "unknown", "a verdict outside RFC 9990's words is not believed"


def test_mailkit_reports_reads_a_maildir_and_says_what_it_refused(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from mailkit.cli import main

    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "new" / "1.host").write_bytes(_message((gzip.compress(SAMPLE), "application/gzip", "r.xml.gz")))
    (maildir / "cur" / "2.host:2,S").write_bytes(_message((b"<feedback><x>", "text/xml", "broken.xml")))
    (maildir / "cur" / "3.host:2,S").write_bytes(b"From: someone@example.net\n\nNot a report, a letter.\n")
    (tmp_path / "link").symlink_to("/etc/shadow")
    (maildir / "cur" / "4.host:2,S").symlink_to(tmp_path / "link")
    saved = tmp_path / "tls.json"
    saved.write_text(json.dumps(TLS))
    done = CliRunner().invoke(main, ["reports", str(maildir), str(saved), "--ours", "198.51.100.25"])
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert lines[0] == "1 DMARC report(s), 1 TLS-RPT report(s), 1 refused"
    assert lines[2].startswith("198.51.100.199") and "OTHER" in lines[2] and "yours" in lines[3]
    assert "2.host:2,S: a DMARC report that is not well-formed XML" in done.output
    assert "4.host" not in done.output, "a link in the Maildir is not followed"
    bad = CliRunner().invoke(main, ["reports", str(saved), "--ours", "mail.example.org"])
    assert bad.exit_code == 2 and "is not an IP address" in bad.output


def test_mailkit_checks_rows_judge_your_own_mail_and_senders_tls_and_name_the_others() -> None:
    from mailkit.status.inside import report_rows

    ours = {"4": ["198.51.100.25"], "6": ["2001:db8::25"]}
    good = _message((gzip.compress(SAMPLE), "application/gzip", "r.xml.gz"))
    dmarc, tls = report_rows({"example.org": [good]}, ours)
    assert dmarc.ok and dmarc.key == "dmarc / DMARC reports of example.org say your mail passes" and dmarc.part == 3
    assert dmarc.detail == (
        "1 report(s): your mail passed (3 messages); others sending as you failed: 198.51.100.199 (1)"
    )
    assert tls.ok and tls.key == "tls-rpt / TLS-RPT reports of example.org say senders reach you over TLS"
    assert tls.detail.startswith("no TLS-RPT report in the last days")
    failing = SAMPLE.replace(b"<dkim>pass</dkim><spf>pass</spf>", b"<dkim>fail</dkim><spf>fail</spf>")
    dmarc, tls = report_rows(
        {"example.org": [_message((failing, "text/xml", "r.xml")), b"Subject: x\n\nnot one\n"]}, ours
    )
    assert not dmarc.ok and dmarc.detail.startswith("your mail FAILED at receiver.example.net: 198.51.100.25 3 of 3")
    assert tls.ok
    # A TLS-RPT report beside: its failed sessions name the reporter, the policy and why; DMARC's row is unchanged.
    tls_report = (gzip.compress(json.dumps(TLS).encode()), "application/tlsrpt+gzip", "tls.json.gz")
    dmarc, tls = report_rows({"example.org": [good, _message(tls_report)]}, ours)
    assert dmarc.ok and not tls.ok and tls.part == 3
    failing = "senders FAILED to reach you over TLS: receiver.example.net (sts example.org): 2 of 42 sessions"
    assert tls.detail.startswith(failing), tls.detail
    clean = dict(TLS, policies=[dict(TLS["policies"][0], summary={"total-successful-session-count": 40,
                                                                   "total-failure-session-count": 0})])  # fmt: skip
    (_, tls) = report_rows(
        {"example.org": [_message((json.dumps(clean).encode(), "application/tlsrpt+json", "t"))]}, ours
    )
    assert tls.ok and tls.detail == "1 report(s): 40 sessions over TLS, none failed (receiver.example.net)"
    (dmarc, tls) = report_rows({"example.org": []}, ours)
    assert dmarc.ok and dmarc.detail.startswith("no report in the last days") and tls.ok
    rows = report_rows({"example.org": "listing the Maildirs failed: no such user"}, ours)
    assert [(r.ok, r.detail[:11]) for r in rows] == [(False, "cannot tell")] * 2


def test_only_report_files_inside_the_maildirs_are_read_newest_first() -> None:
    from mailkit.server.report_mail import MAX_REPORT_MESSAGES, report_files

    base = "/var/vmail/example.org/dmarc"
    lines = [
        f"{base}/cur/1796597078.M1P2.mail:2,S\tSubject: Report Domain: example.org Submitter: a",
        f"{base}/.Junk/cur/1796599999.M1P2.mail:2,\tsubject:   REPORT DOMAIN: Example.ORG.",
        f"{base}/cur/1796590000.M1P2.mail:2,S\tSubject: Report Domain: example.org.evil.test",
        "/etc/shadow\tSubject: Report Domain: example.org",
        f"{base}/../../../../etc/cur/1\tSubject: Report Domain: example.org",
        f"{base}/cur/17965\x1b[2J.mail\tSubject: Report Domain: example.org",
        f"{base}/cur/1796597000.M1P2.mail\tSubject: Re: Report Domain: example.org",
    ]
    found = report_files("\n".join(lines), ["example.org"])
    assert found == {
        "example.org": [f"{base}/.Junk/cur/1796599999.M1P2.mail:2,", f"{base}/cur/1796597078.M1P2.mail:2,S"]
    }
    many = "\n".join(f"{base}/cur/{1796590000 + i}.M1P2.mail\tSubject: Report Domain: example.org" for i in range(50))
    newest = report_files(many, ["example.org"])["example.org"]
    assert len(newest) == MAX_REPORT_MESSAGES and newest[0].endswith("/1796590049.M1P2.mail")


def test_the_listing_reads_headers_only_and_not_old_or_large_files(tmp_path: Path) -> None:
    """The script the server runs, run here with Debian's find, xargs and awk against a Maildir made for it."""
    import os
    import subprocess
    import time

    from mailkit.server import report_mail

    mailbox = tmp_path / "example.org" / "dmarc"
    for folder in ("cur", ".Junk/cur", "new"):
        (mailbox / folder).mkdir(parents=True)
    files = {
        "cur/1.mail:2,S": "From: a\nSubject: Report Domain: example.org Submitter: x\n\nbody\n",
        ".Junk/cur/2.mail:2,": "Subject: Report Domain: example.net\r\n\r\nbody\r\n",
        "new/3.mail": "From: a\nSubject: hello\n\nSubject: Report Domain: example.org\n",  # in the body
        "cur/4.mail:2,S": "Subject: Report Domain: example.org\n\n" + "x" * 2000,  # too large here
        "cur/5.mail:2,S": "Subject: Report Domain: example.org\n\nold\n",
        "tmp-not-a-folder.mail": "Subject: Report Domain: example.org\n\n",
    }
    for name, text in files.items():
        (mailbox / name).write_text(text)
    old = time.time() - 9 * 86400
    os.utime(mailbox / "cur/5.mail:2,S", (old, old))
    done = subprocess.run(
        ["sh", "-c", report_mail._LIST, "sh", str(tmp_path), "8", "1000"], capture_output=True, text=True, check=True
    )
    said = sorted(line.split("\t")[0].removeprefix(str(mailbox) + "/") for line in done.stdout.splitlines())
    assert said == [".Junk/cur/2.mail:2,", "cur/1.mail:2,S"]
