"""`mailkit check`'s own logic: record lints, the probe's answers as rows, changes between runs, the outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailkit.cli import main
from mailkit.domain.published import decode_blocklist_answer, dmarc_problems, spf_lookups
from mailkit.status.dnschecks import blocklist_rows, dkim_rows, dmarc_rows, domain_blocklist_rows, mx_rows, ptr_rows
from mailkit.status.inside import count_updates, parse_df
from mailkit.status.outside import auth_rows, outside_rows, relay_rows, tls_rows
from mailkit.status.rows import Row, StatusReport, load_report
from mailkit.status.run import changes_since, record_changes, state_file


def zone(records: dict[tuple[str, str], tuple[str, ...]]):
    return lambda name, rtype: records.get((name, rtype), ())


# -- SPF -------------------------------------------------------------------------------------------------------------
def test_spf_counts_lookups_through_includes_and_flags_more_than_ten() -> None:
    records = {("example.org", "TXT"): ('"v=spf1 mx a include:a.example.net redirect=b.example.net"',)}
    records[("a.example.net", "TXT")] = ('"v=spf1 ' + " ".join(f"exists:{i}.example.net" for i in range(8)) + ' -all"',)
    records[("b.example.net", "TXT")] = ('"v=spf1 ptr -all"',)
    count = spf_lookups("example.org", zone(records))
    assert count.lookups == 11  # mx, a, include, 8 exists: the 11th is where a receiver stops (redirect, ptr unread)
    assert count.problems == ("more than 10 DNS lookups (RFC 7208 4.6.4): receivers stop with permerror",)
    del records[("a.example.net", "TXT")]
    records[("a.example.net", "TXT")] = ('"v=spf1 ' + " ".join(f"exists:{i}.example.net" for i in range(5)) + ' -all"',)
    assert spf_lookups("example.org", zone(records)) == spf_lookups("example.org", zone(records))
    assert spf_lookups("example.org", zone(records)).lookups == 2 + 1 + 5 + 1 + 1  # ten: allowed
    assert spf_lookups("example.org", zone(records)).problems == ()


def test_spf_walk_of_a_hostile_diamond_costs_a_bounded_number_of_queries() -> None:
    """Security review, finding 5: 2N records including each other twice per level cost 2^N lookups."""
    records: dict[tuple[str, str], tuple[str, ...]] = {}
    levels = 18
    for level in range(levels):
        nxt = (f"l{level + 1}a.example.net", f"l{level + 1}b.example.net")
        for name in (f"l{level}a.example.net", f"l{level}b.example.net"):
            records[(name, "TXT")] = (f'"v=spf1 include:{nxt[0]} include:{nxt[1]} -all"',)
    for name in (f"l{levels}a.example.net", f"l{levels}b.example.net"):
        records[(name, "TXT")] = ('"v=spf1 -all"',)
    asked: list[str] = []

    def lookup(name: str, rtype: str) -> tuple[str, ...]:
        asked.append(name)
        return records.get((name, rtype), ())

    count = spf_lookups("l0a.example.net", lookup)
    assert count.lookups == 11 and "more than 10 DNS lookups" in count.problems[0]
    assert len(asked) <= 12 and len(set(asked)) == len(asked), "each name asked once, and only a dozen of them"

    def slow(name: str, rtype: str) -> tuple[str, ...]:
        import time

        time.sleep(0.05)
        return lookup(name, rtype)

    timed = spf_lookups("l0a.example.net", slow, seconds=0.12)
    assert any("took more than" in p for p in timed.problems)


def test_spf_two_records_and_a_loop_are_problems() -> None:
    two = {("example.org", "TXT"): ('"v=spf1 mx -all"', '"v=spf1 a -all"')}
    assert "2 SPF records" in spf_lookups("example.org", zone(two)).problems[0]
    loop = {("example.org", "TXT"): ('"v=spf1 include:example.org -all"',)}
    assert "includes itself" in spf_lookups("example.org", zone(loop)).problems[0]


# -- DMARC (RFC 9989) -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ("v=DMARC1; p=none; pct=100", "pct= was removed by RFC 9989"),
        ("v=DMARC1; p=none; ri=86400", "ri= was removed"),
        ("v=DMARC1; p=none; rf=afrf", "rf= was removed"),
        ("v=DMARC1; rua=mailto:a@example.org", "no p= tag"),
        ("v=DMARC1; p=none; np=block", "np=block is not valid"),
        ("v=DMARC1; p=none; t=maybe", "t=maybe is not valid"),
        ("v=DMARC1; p=none; rua=postmaster@example.org", "rua=postmaster@example.org is not valid"),
        ("v=DMARC1; p=none; polcy=reject", "polcy= is not a DMARC tag"),
        ("p=none; v=DMARC1", "must start with v=DMARC1"),
    ],
)
def test_dmarc_lint_names_each_problem(record: str, problem: str) -> None:
    assert any(problem in p for p in dmarc_problems(record)), dmarc_problems(record)


def test_dmarc_clean_records_pass_and_two_records_fail() -> None:
    assert dmarc_problems("v=DMARC1; p=reject; sp=quarantine; np=reject; t=n; psd=n; adkim=s; fo=1:d") == []
    two = zone({("_dmarc.example.org", "TXT"): ('"v=DMARC1; p=none"', '"v=DMARC1; p=reject"')})
    [row] = dmarc_rows(["example.org"], two)
    assert not row.ok and "2 DMARC records" in row.detail


# -- DKIM ------------------------------------------------------------------------------------------------------------
def _rsa_public(bits: int) -> str:
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def test_dkim_key_must_be_the_servers_and_2048_bits() -> None:
    strong, weak = _rsa_public(2048), _rsa_public(1024)
    name = "s1._domainkey.example.org"
    published = zone({(name, "TXT"): (f'"v=DKIM1; k=rsa; p={strong[:200]}" "{strong[200:]}"',)})
    [row] = dkim_rows(["example.org"], "s1", {"example.org": strong}, published)
    assert row.ok and row.detail == "RSA-2048, the server's key"
    [row] = dkim_rows(["example.org"], "s1", {"example.org": _rsa_public(2048)}, published)
    assert not row.ok and "differs from the server's key" in row.detail
    short = zone({(name, "TXT"): (f'"v=DKIM1; p={weak}"',)})
    [row] = dkim_rows(["example.org"], "s1", {"example.org": weak}, short)
    assert not row.ok and "RSA-1024" in row.detail
    [row] = dkim_rows(["example.org"], "s1", {"example.org": strong}, zone({}))
    assert not row.ok and row.detail == "no key published"


# -- MX, PTR, block lists --------------------------------------------------------------------------------------------
def test_mx_must_name_the_server_first() -> None:
    lookup = zone({("example.org", "MX"): ("20 mail.example.org.", "10 backup.example.net.")})
    [row] = mx_rows(["example.org"], "mail.example.org", lookup)
    assert not row.ok and row.detail == "backup.example.net mail.example.org"


def test_ptr_must_be_forward_confirmed() -> None:
    addresses = {"4": ["198.51.100.25"], "6": []}
    reverse = "25.100.51.198.in-addr.arpa"
    good = zone({(reverse, "PTR"): ("mail.example.org.",), ("mail.example.org", "A"): ("198.51.100.25",)})
    assert [r.ok for r in ptr_rows("mail.example.org", addresses, good)] == [True]
    unconfirmed = zone({(reverse, "PTR"): ("mail.example.org.",), ("mail.example.org", "A"): ("198.51.100.26",)})
    assert [r.ok for r in ptr_rows("mail.example.org", addresses, unconfirmed)] == [False]
    [row] = ptr_rows("mail.example.org", addresses, zone({}))
    assert not row.ok and row.detail == "no PTR record"


@pytest.mark.parametrize(
    ("zone_name", "answers", "listed", "conclusive", "words"),
    [
        ("zen.spamhaus.org", [], False, True, "not listed"),
        ("zen.spamhaus.org", ["127.0.0.2"], True, True, "SBL"),
        ("zen.spamhaus.org", ["127.0.0.4", "127.0.0.11"], True, True, "XBL"),
        ("zen.spamhaus.org", ["127.255.255.254"], False, False, "public or open resolvers"),
        ("zen.spamhaus.org", ["127.255.255.255"], False, False, "rate limit"),
        ("bl.example.net", ["127.0.0.2"], True, True, "listed (127.0.0.2)"),
        ("bl.example.net", ["198.51.100.9"], False, False, "rewrote the answer"),
    ],
)
def test_blocklist_answers_are_decoded(
    zone_name: str, answers: list[str], listed: bool, conclusive: bool, words: str
) -> None:
    answer = decode_blocklist_answer(zone_name, answers)
    assert (answer.listed, answer.conclusive) == (listed, conclusive) and words in answer.meaning


def test_a_spamhaus_refusal_is_not_reported_as_listed_but_is_not_green_either() -> None:
    lookup = zone({("25.100.51.198.zen.spamhaus.org", "A"): ("127.255.255.254",)})
    [row] = blocklist_rows({"4": ["198.51.100.25"], "6": []}, ["zen.spamhaus.org*2"], lookup)
    assert not row.ok and row.detail.startswith("cannot tell") and "listed:" not in row.detail
    assert "own resolver" in row.fix


def test_a_mail_domain_on_a_domain_block_list_is_a_part_3_failure_named_by_its_code() -> None:
    lookup = zone({("example.org.dbl.spamhaus.org", "A"): ("127.0.1.4",)})
    rows = domain_blocklist_rows(["example.org", "b.example.org"], ["dbl.spamhaus.org"], lookup)
    assert [(r.name, r.ok, r.part) for r in rows] == [
        ("example.org on dbl.spamhaus.org", False, 3),
        ("b.example.org on dbl.spamhaus.org", True, 3),
    ]
    assert rows[0].detail == "listed: DBL (a phishing domain)" and "delisted" in rows[0].fix
    refused = zone({("example.org.dbl.spamhaus.org", "A"): ("127.255.255.254",)})
    [row] = domain_blocklist_rows(["example.org"], ["dbl.spamhaus.org"], refused)
    assert not row.ok and row.detail.startswith("cannot tell")


# -- the probe's answers ---------------------------------------------------------------------------------------------
def test_an_accepted_relay_trick_is_a_failed_row() -> None:
    seen = {"relay": [["foreign recipient", "victim@other.test", 250, "2.1.5 Ok"]]}
    rows = {r.name: r for r in relay_rows(seen, "example.org")}
    accepted = rows["relay refused: foreign recipient (victim@other.test)"]
    assert not accepted.ok and "ACCEPTED" in accepted.detail
    untried = [r for r in rows.values() if r.detail == "not tried"]
    assert len(untried) == 6 and not any(r.ok for r in untried), "a trick that was not tried never passes"


def test_auth_and_tls_rows() -> None:
    tls = {
        "25": {"auth_before_tls": False, "auth_after_tls": ["PLAIN"], "tls": {"version": "TLSv1.3", "days_left": 80}},
        "587": {"auth_before_tls": True, "auth_after_tls": [], "tls_error": "certificate has expired"},
        "143": {"capabilities_before_tls": ["IMAP4REV1", "STARTTLS"]},
    }
    rows = {r.name: r.ok for r in auth_rows(tls)}
    assert rows == {
        "no AUTH on 25 (servers do not log in)": False,
        "587: no AUTH before STARTTLS": False,
        "587: AUTH offered after STARTTLS": False,
        "143: LOGIN refused before STARTTLS (LOGINDISABLED)": False,
    }
    verdicts = {r.name: (r.ok, r.detail) for r in tls_rows(tls, [25, 587], "mail.example.org", "198.51.100.25")}
    assert verdicts["TLS on 587 (198.51.100.25)"] == (False, "certificate has expired")
    assert verdicts["TLS on 25 (198.51.100.25)"][0]
    soon = {"25": {"tls": {"version": "TLSv1.3", "days_left": 3}}}
    assert not tls_rows(soon, [25], "mail.example.org", "198.51.100.25")[0].ok


def test_closed_and_filtered_ports_are_told_apart() -> None:
    seen = {"ports": {"198.51.100.25": {"25": "open", "587": "closed", "993": "filtered"}}}
    rows = {r.name.split(" ")[0]: r for r in outside_rows(seen, [25, 587, 993], "mail.example.org", "example.org")}
    assert rows["25"].ok and not rows["587"].ok and not rows["993"].ok
    assert rows["587"].detail.startswith("closed: refused") and rows["993"].detail.startswith("filtered: no answer")


# -- inside parsers --------------------------------------------------------------------------------------------------
def test_inside_parsers() -> None:
    assert parse_df("Use% IUse%\n 93%    -\n") == (93, 0)
    text = "Inst a [1] (2 Debian:13.2/stable [amd64])\nInst b [1] (2 Debian-Security:13/stable-security [amd64])\n"
    assert count_updates(text) == (2, 1)


# -- reports and changes ---------------------------------------------------------------------------------------------
def test_report_round_trips_through_json_and_renders_markdown() -> None:
    rows = [Row("ports", "25", True, "open", part=1), Row("drift", "main.cf", False, "x", "fix it", 1, "-a\n+b\n")]
    report = StatusReport("lab:mail", "lab:outside", rows)
    again = load_report(json.loads(report.json()))
    assert again.rows == rows and not again.ok
    text = report.markdown()
    assert "| **FAIL** | drift / main.cf | x | fix it |" in text and "```diff\n-a\n+b\n```" in text


def test_changes_since_the_previous_run(tmp_path: Path) -> None:
    path = state_file("lab:mail", tmp_path)
    first = StatusReport("lab:mail", "here", [Row("ports", "25", True, "open"), Row("dns", "MX", True, "mail")])
    record_changes(first, path)
    assert first.changes == ["first run: nothing to compare with yet"]
    second = StatusReport("lab:mail", "here", [Row("ports", "25", False, "closed"), Row("ssh", "pw", True, "no")])
    record_changes(second, path)
    assert second.changes == ["ports / 25: ok -> FAIL (open -> closed)", "ssh / pw: new (ok: no)", "dns / MX: gone"]
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert changes_since({"a / b": {"ok": True, "detail": "1"}}, [Row("a", "b", True, "2")]) == ["a / b: 1 -> 2"]


# -- bad input: a clear error, nothing touched -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--nameserver", "ns.example.net"], "is not an IP address"),
        (["--blocklist", "zen.spamhaus.org;rm -rf /"], "--blocklist"),
        (["--host", "-oProxyCommand=x"], "is not an SSH destination"),
        (["--json", "--markdown"], "choose one of"),
        (["--domain", "bad domain"], "--domain"),
    ],
)
def test_bad_check_options_are_refused_before_any_connection(
    args: list[str], words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_connection(*_: object, **__: object) -> None:
        raise AssertionError("no host may be contacted")

    monkeypatch.setattr("mailkit.server.target.connect", no_connection)
    result = CliRunner().invoke(main, ["check", *args])
    assert result.exit_code == 2, result.output
    assert words in result.output


def test_outbound_port_25_needs_a_greeting() -> None:
    from mailkit.core.result import Result
    from mailkit.status.inside import outbound_rows

    class Fake:
        def __init__(self, stdout: str, exited: int) -> None:
            self.answer = Result("bash", stdout, "", exited)
            self.argv: list[str] = []

        def run(self, argv: list[str], **_: object) -> Result:
            self.argv = argv
            return self.answer

    blocked = Fake("", 124)
    [row] = outbound_rows(blocked, "mx.example.net")  # type: ignore[arg-type]
    assert not row.ok and "no greeting" in row.detail and blocked.argv[-2:] == ["mx.example.net", "25"]
    [row] = outbound_rows(Fake("220 ", 0), "mx.example.net")  # type: ignore[arg-type]
    assert row.ok


def test_through_a_relay_its_port_is_checked_and_a_refused_login_is_named() -> None:
    """With a relay (port 25 blocked), the relay's port must answer, and mail waiting on a refused login is red."""
    import json

    from mailkit.core.result import Result
    from mailkit.status.inside import outbound_rows

    refused = "SASL authentication failed; server relay.example.net[198.51.100.68] said: 535 5.7.8 Error: failed"
    queue = json.dumps({"queue_name": "deferred", "recipients": [{"address": "a@b.test", "delay_reason": refused}]})

    class Relay:
        def __init__(self, waiting: str) -> None:
            self.asked: list[list[str]] = []
            self.waiting = waiting

        def run(self, argv: list[str], **_: object) -> Result:
            self.asked.append(argv)
            if argv[0] == "postqueue":
                return Result("postqueue -j", self.waiting, "", 0)
            return Result("bash", "220 relay.example.net ESMTP", "", 0)

    server = Relay(queue + "\n")
    reach, login = outbound_rows(server, "mx.example.net", "[relay.example.net]:587")  # type: ignore[arg-type]
    probe = [argv for argv in server.asked if argv[0] != "postqueue"]
    assert reach.ok and probe[0][-2:] == ["relay.example.net", "587"], "the relay's port, not 25"
    assert not login.ok and "535 5.7.8" in login.detail and "section 8" in login.fix
    _, login = outbound_rows(Relay(""), "mx.example.net", "[relay.example.net]:587")  # type: ignore[arg-type]
    assert login.ok


# -- MTA-STS: the policy fetched over HTTPS, from a server on loopback -------------------------------------------------
@pytest.fixture
def policy_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import http.server
    import ssl
    import threading

    from mailkit.domain import mtasts
    from mailkit.lab.ca import CertificateAuthority

    ca = CertificateAuthority(tmp_path / "ca")
    chain, key = ca.issue("mta-sts.example.org")
    (tmp_path / "chain.pem").write_bytes(chain)
    (tmp_path / "key.pem").write_bytes(key)
    served: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = served.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "chain.pem", tmp_path / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(mtasts, "HTTPS_PORT", server.server_address[1])
    yield served, str(ca.cert_path)
    server.shutdown()


def _sts_zone() -> object:
    return zone({("_mta-sts.example.org", "TXT"): ('"v=STSv1; id=20261201"',),
                 ("mta-sts.example.org", "A"): ("127.0.0.1",)})  # fmt: skip


def test_mta_sts_policy_is_fetched_and_must_name_the_server(policy_site: tuple[dict[str, bytes], str]) -> None:
    from mailkit.status.dnschecks import policy_rows

    served, ca_file = policy_site
    path = "/.well-known/mta-sts.txt"
    served[path] = b"version: STSv1\r\nmode: enforce\r\nmx: *.example.org\r\nmax_age: 604800\r\n"
    row = policy_rows(["example.org"], "mail.example.org", _sts_zone(), ca_file)[0]
    assert row.ok and row.detail == "id=20261201, mode enforce, max_age 604800, mx matches mail.example.org"
    served[path] = b"version: STSv1\r\nmode: enforce\r\nmx: mx.example.net\r\nmax_age: 604800\r\n"
    row = policy_rows(["example.org"], "mail.example.org", _sts_zone(), ca_file)[0]
    assert not row.ok and "matches no mx line" in row.detail
    row = policy_rows(["example.org"], "mail.example.org", _sts_zone(), None)[0]  # the lab CA is not trusted
    assert not row.ok and "does not verify" in row.detail
    del served[path]
    row = policy_rows(["example.org"], "mail.example.org", _sts_zone(), ca_file)[0]
    assert not row.ok and "answered HTTP/1.0 404" in row.detail
    [row, rpt] = policy_rows(["example.org"], "mail.example.org", zone({}), ca_file)
    assert row.ok and row.detail == "not published (optional)" and rpt.ok


# -- a report file somebody sends is hostile (security review, finding 1) ------------------------------------------
def test_a_report_with_markup_in_part_is_refused_and_text_fields_are_escaped(tmp_path: Path) -> None:
    import pytest

    from mailkit.classroom.board import board_html, read_reports
    from mailkit.core.errors import UsageError
    from mailkit.status.rows import ReportRejected

    row = {"group": "ports", "name": "25", "ok": False, "detail": "x", "fix": "f", "part": 1}
    evil = {"host": "alice", "rows": [{**row, "part": "<img src=x onerror=alert(1)>"}]}
    path = tmp_path / "alice.json"
    path.write_text(json.dumps(evil))
    with pytest.raises(UsageError, match="part must be one of"):
        read_reports([path])
    for bad in (
        {"host": "a", "rows": [{**row, "ok": "yes"}]},
        {"host": "a", "rows": [{**row, "name": ["<b>"]}]},
        {"host": "a", "rows": [{**row, "detail": "x" * 5000}]},
        {"host": "a", "rows": [{**row, "extra": 1}]},
        {"host": {"x": 1}, "rows": []},
        [1, 2],
    ):
        with pytest.raises(ReportRejected):
            load_report(bad)
    path.write_text("{not json")
    with pytest.raises(UsageError, match="not a report"):
        read_reports([path])
    markup = {"host": "<script>x</script>", "rows": [{**row, "name": "<script>n</script>", "detail": "<i>d</i>",
                                                     "fix": "<b>f</b>", "group": "<u>g</u>"}]}  # fmt: skip
    page = board_html([load_report(markup)])
    assert "<script>" not in page and "<i>d" not in page and "<b>f" not in page and "<u>g" not in page
