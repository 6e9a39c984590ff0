"""`mailkit check` against the lab's finished server as if it were a real one: green as the guide leaves it, and
exactly the expected rows red for each thing broken on purpose (then mended).

Runs after the notebooks (test_30), so the mail host has parts 1 to 4 applied; trixie only (the check reads the
same things on every release, and the release matrix covers the guide itself).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mailkit.core.facts import gather
from mailkit.core.resources.keys import PublicKey
from mailkit.core.ssh import Connection
from mailkit.domain.records import lookup_at
from mailkit.domain.tlsa import tlsa_311, tlsa_name
from mailkit.lab.dns import NAMESERVER, reverse_name
from mailkit.lab.lab import Lab
from mailkit.lab.lab_target import lab_connection
from mailkit.lab.layout import HOSTS
from mailkit.status.run import check_server

pytestmark = pytest.mark.lab
MAIL = HOSTS["mail"]
V4, V6 = MAIL.address, MAIL.address6
CERT, KEY = f"/etc/ssl/certs/{MAIL.fqdn}.pem", f"/etc/ssl/private/{MAIL.fqdn}.key"
#: The ports where Postfix without smtpd_tls_exclude_ciphers agrees to an insufficient cipher (measured: see the test).
WEAK_WITHOUT_EXCLUSION = (25, 465, 587)
UNCHANGED = "find /etc/postfix /etc/dovecot /etc/rspamd /var/vmail -printf '%p %s %T@\\n' | sort; postqueue -j"


@pytest.fixture(scope="module")
def mail(lab: Lab, request: pytest.FixtureRequest) -> Iterator[Connection]:
    if lab.status()["release"] != "trixie":
        pytest.skip("mailkit check is tested on trixie")
    request.getfixturevalue("finished")  # the guide's finished server (as test_30 leaves it, or built now)
    conn = lab_connection("mail")
    yield conn
    conn.close()


#: Debian publishes security updates whenever it must: the lab's cached image may lack one that came out since it
#: was built, and then this row is rightly red. It is allowed to be, everywhere here, and checked for its form.
MAY_BE_RED = {"updates / security updates pending"}


def red(report_rows: list) -> set[str]:
    """The red rows' keys; what each said is printed, so that a failure here (in CI, with no lab left to look at)
    shows why a row was red, not only which."""
    for row in report_rows:
        if not row.ok:
            print(f"red: {row.key}: {row.detail}")
    return {r.key for r in report_rows if not r.ok} - MAY_BE_RED


def check() -> set[str]:
    return red(check_server("lab:mail", vantage="lab:outside").rows)


@contextmanager
def dns_changed(lab: Lab, name: str, rtype: str, values: list[str], forget: Connection | None = None) -> Iterator[None]:
    """``name``'s ``rtype`` records changed, then put back; ``forget``: a server whose resolver (Unbound, section 13)
    is restarted after each change, so that it does not answer from its cache (10 s in the lab) for a while."""
    before = list(lookup_at(NAMESERVER.address)(name, rtype))
    lab.set_dns_records(name, rtype, values)
    if forget is not None:
        forget.run(["systemctl", "restart", "unbound"])
    try:
        yield
    finally:
        lab.set_dns_records(name, rtype, before)
        if forget is not None:
            forget.run(["systemctl", "restart", "unbound"])


def commands(mail: Connection, *argvs: list[str]) -> Callable[[], None]:
    def run() -> None:
        for argv in argvs:
            mail.run(argv)

    return run


@contextmanager
def on_server(change: Callable[[], None], undo: Callable[[], None]) -> Iterator[None]:
    change()
    try:
        yield
    finally:
        undo()


def test_the_finished_server_is_green_and_the_check_changes_nothing(mail: Connection) -> None:
    before = mail.run(["sh", "-c", UNCHANGED]).stdout
    report = check_server("lab:mail", vantage="lab:outside")
    assert red(report.rows) == set(), report.text()
    keys = {r.key for r in report.rows}
    updates = next(r for r in report.rows if r.key in MAY_BE_RED)
    assert re.fullmatch(r"\d+ security, \d+ in all \(package lists \d+ days old\)", updates.detail), updates.detail
    for expected in (
        "ports / 25 SMTP (mail from other servers) on 2001:db8:100::25",
        "ports / 4190 ManageSieve (STARTTLS) on 198.51.100.25",
        "relay / relay refused: percent hack (victim%example.net@example.org)",
        "dkim / DKIM s202612._domainkey.example.org",
        "dmarc / DMARC of example.org (RFC 9989)",
        "block lists / 198.51.100.25 on bl.example.net",
        "drift / dovecot.conf as the guide renders it",
        "certificate / certificate " + CERT,
        "ssh / SSH password logins off",
        "guessing / password guessers banned (fail2ban)",
        "firewall / other ports get no answer on 198.51.100.25",
        "tls / TLS 1.0 and 1.1 refused on 4190 (198.51.100.25)",
        "tls / insufficient ciphers refused on 25 (198.51.100.25)",
        "tls / no Diffie-Hellman group under 2048 bits on 993 (198.51.100.25)",
        "reverse dns / SMTP greeting names the server (as its PTR does)",
        "dmarc / DMARC reports of b.example.org go where they are accepted",
        "dmarc / DMARC reports of example.org say your mail passes",
        "tls-rpt / TLS-RPT reports of example.org say senders reach you over TLS",
        "dnssec / MX of example.org signed (DNSSEC)",
        f"dnssec / A of {MAIL.fqdn} signed (DNSSEC)",
        "block lists / b.example.org on dbl.bl.example.net",
        "mta-sts / MTA-STS of b.example.org",
        "tls-rpt / TLS-RPT of example.org",
        "ports / 443 HTTPS (the MTA-STS policies) on 2001:db8:100::25",
        "tls / insufficient ciphers refused on 443 (198.51.100.25)",
        "services / nginx running",
        "dane / Postfix on the server verifies example.org by DANE (its own resolver)",
    ):
        assert expected in keys, expected
    policy = next(r for r in report.rows if r.key == "mta-sts / MTA-STS of example.org")
    assert policy.ok and "mode enforce" in policy.detail, "section 14 ends enforcing"
    assert mail.run(["sh", "-c", UNCHANGED]).stdout == before, "checking a server must not change it"


def test_cli_json_markdown_and_changes(mail: Connection, lab: Lab, tmp_path: Path) -> None:
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "mailkit.cli", "check", "--host", "lab:mail", *args]
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)

    first = cli("--json", "--changes")  # from this machine: it is on the lab network, and trusts the lab CA here
    assert first.returncode == 0, first.stdout + first.stderr
    data = json.loads(first.stdout)
    assert (
        data["ok"] and data["from"] == "this machine" and data["changes"] == ["first run: nothing to compare with yet"]
    )
    assert (tmp_path / "mailkit" / "check" / "lab_mail.json").exists()
    with dns_changed(lab, reverse_name(V4), "PTR", []):
        second = cli("--markdown", "--changes")
    assert second.returncode == 1
    row = f"reverse dns / PTR of {V4} (forward-confirmed)"
    assert f"| **FAIL** | {row} | no PTR record |" in second.stdout
    assert f"- {row}: ok -> FAIL (PTR {MAIL.fqdn} -> no PTR record)" in second.stdout


def test_ptr_removed(mail: Connection, lab: Lab) -> None:
    with dns_changed(lab, reverse_name(V4), "PTR", []):
        assert check() == {f"reverse dns / PTR of {V4} (forward-confirmed)"}


def test_spf_wrong(mail: Connection, lab: Lab) -> None:
    with dns_changed(lab, "example.org", "TXT", ['"v=spf1 a:outside.example.net -all"']):
        assert check() == {"spf / SPF of example.org"}


def test_expired_certificate(mail: Connection, lab: Lab) -> None:
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=40)
    chain, key = lab.ca.issue(MAIL.fqdn, days=30, not_before=long_ago)
    saved = {path: mail.read(path) for path in (CERT, KEY)}

    def put(cert: bytes, private: bytes) -> None:
        mail.write(CERT, cert, mode=0o644)
        mail.write(KEY, private, mode=0o600)
        mail.run(["systemctl", "restart", "postfix", "dovecot"])  # a reload lets idle processes serve the old one

    with on_server(lambda: put(chain, key), lambda: put(saved[CERT], saved[KEY])):
        tls = {f"tls / TLS on {port} ({V4})" for port in (25, 465, 587, 143, 993, 4190)}
        # The new certificate came with a new key, which no TLSA record names: DANE senders would hold the mail too.
        assert check() == {f"certificate / certificate {CERT}", *tls, SERVED_KEY, ROLLOVER, OWN_DANE}
    assert check() == set()


def test_mynetworks_too_wide(mail: Connection) -> None:
    wide = ["postconf", "-e", "mynetworks=0.0.0.0/0 [::]/0"]
    narrow = ["postconf", "-e", "mynetworks=127.0.0.0/8 [::1]/128"]
    reload = ["systemctl", "restart", "postfix"]  # new smtpd processes at once (a reload waits for idle ones)
    with on_server(commands(mail, wide, reload), commands(mail, narrow, reload)):
        report = check_server("lab:mail", vantage="lab:outside")
        relayed = {
            "relay / relay refused: foreign recipient (victim@example.net)",
            "relay / relay refused: source route (@example.org:victim@example.net)",
            "relay / relay refused: forged local sender (victim@example.net)",
        }  # the other tricks name a local domain: Postfix refuses them as unknown users, wide mynetworks or not
        assert red(report.rows) == {"drift / main.cf and master.cf as the guide renders them", *relayed}
        assert all("ACCEPTED" in r.detail for r in report.rows if r.key in relayed)
        drift = next(r for r in report.rows if r.group == "drift" and not r.ok)
        assert "+mynetworks = 127.0.0.0/8 [::1]/128" in drift.diff and "-mynetworks = 0.0.0.0/0 [::]/0" in drift.diff
    assert check() == set()


def test_dovecot_stopped(mail: Connection) -> None:
    # Postfix's idle smtpd processes keep the AUTH mechanisms they read; new ones (after a restart, or 100 s idle)
    # cannot reach Dovecot and close 465 and 587: the restart makes the test see the lasting state at once.
    stop = commands(mail, ["systemctl", "stop", "dovecot"], ["systemctl", "restart", "postfix"])
    with on_server(stop, commands(mail, ["systemctl", "start", "dovecot"], ["systemctl", "restart", "postfix"])):
        ports = {
            f"ports / {port} {what} on {address}"
            for port, what in ((143, "IMAP (STARTTLS)"), (993, "IMAPS (TLS on connect)"),
                               (4190, "ManageSieve (STARTTLS)"))
            for address in (V4, V6)
        }  # fmt: skip
        submission = {f"tls / TLS on 465 ({V4})", f"tls / TLS on 587 ({V4})", "auth / 587: AUTH offered after STARTTLS"}
        assert check() == {"services / dovecot running", *ports, *submission}
    assert check() == set()


@contextmanager
def main_cf_changed(mail: Connection, *settings: str) -> Iterator[None]:
    """``postconf -e`` of ``settings`` on the server, Postfix restarted (new smtpd processes at once), main.cf put back
    byte for byte afterwards."""
    saved = mail.read("/etc/postfix/main.cf")
    restart = ["systemctl", "restart", "postfix"]

    def put_back() -> None:
        mail.write("/etc/postfix/main.cf", saved, mode=0o644)
        mail.run(restart)

    with on_server(commands(mail, ["postconf", "-e", *settings], restart), put_back):
        yield


def test_old_tls_accepted(mail: Connection) -> None:
    # What an old how-to leaves: every protocol allowed, and OpenSSL's security level lowered so that the
    # SHA-1-based TLS 1.0 and 1.1 can be negotiated at all.
    oldest, level0 = ">=TLSv1", "DEFAULT:@SECLEVEL=0"
    old_how_to = (f"smtpd_tls_protocols={oldest}", f"smtpd_tls_mandatory_protocols={oldest}",
                  f"tls_medium_cipherlist={level0}", f"tls_high_cipherlist={level0}")  # fmt: skip
    with main_cf_changed(mail, *old_how_to):
        report = check_server("lab:mail", vantage="lab:outside")
        old = {f"tls / TLS 1.0 and 1.1 refused on {port} ({V4})" for port in (25, 465, 587)}
        assert red(report.rows) == {"drift / main.cf and master.cf as the guide renders them", *old}
        row = next(r for r in report.rows if r.key == f"tls / TLS 1.0 and 1.1 refused on 25 ({V4})")
        assert row.detail == "TLS 1.0 ACCEPTED, TLS 1.1 ACCEPTED"
    report = check_server("lab:mail", vantage="lab:outside")
    assert red(report.rows) == set()
    for port in (25, 465, 587, 143, 993, 443, 4190):  # 443: nginx, serving the MTA-STS policies (section 14)
        row = next(r for r in report.rows if r.key == f"tls / TLS 1.0 and 1.1 refused on {port} ({V4})")
        assert row.detail == "TLS 1.0 refused, TLS 1.1 refused"


def test_insufficient_ciphers_accepted(mail: Connection) -> None:
    # Postfix's own default: no cipher excluded, so port 25 agrees to what a client offers from its medium grade
    with main_cf_changed(mail, "smtpd_tls_exclude_ciphers="):
        report = check_server("lab:mail", vantage="lab:outside")
        weak = {f"tls / insufficient ciphers refused on {port} ({V4})" for port in WEAK_WITHOUT_EXCLUSION}
        assert red(report.rows) == {"drift / main.cf and master.cf as the guide renders them", *weak}
        row = next(r for r in report.rows if r.key == f"tls / insufficient ciphers refused on 25 ({V4})")
        assert row.detail.startswith("ACCEPTED: TLSv1.2 ")
    assert check() == set()


def test_a_1024_bit_dh_group_offered(mail: Connection) -> None:
    # What old how-tos left: an RSA certificate (DHE needs one: the guide's ECDSA key allows only ECDHE), a
    # 'dh1024.pem' made with 'openssl dhparam', and OpenSSL's security level lowered so that it can be used at all.
    # The RSA pair is the second certificate: clients that can verify ECDSA still get the guide's.
    old = "/root/old-how-to"
    mail.run(["sh", "-c", 'mkdir -m 700 -p "$1" && cd "$1" && openssl dhparam -out dh1024.pem 1024 2>/dev/null && '
              'openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout rsa.key -out rsa.pem -subj "/CN=$2" '
              '2>/dev/null', "sh", old, MAIL.fqdn])  # fmt: skip
    old_how_to = (f"smtpd_tls_eccert_file={CERT}", f"smtpd_tls_eckey_file={KEY}",
                  f"smtpd_tls_cert_file={old}/rsa.pem", f"smtpd_tls_key_file={old}/rsa.key",
                  f"smtpd_tls_dh1024_param_file={old}/dh1024.pem",
                  "tls_medium_cipherlist=DEFAULT:@SECLEVEL=1")  # fmt: skip
    try:
        with main_cf_changed(mail, *old_how_to):
            report = check_server("lab:mail", vantage="lab:outside")
            small = {f"tls / no Diffie-Hellman group under 2048 bits on {port} ({V4})" for port in (25, 465, 587)}
            # Also red, rightly: the certificate Postfix names first is now the self-signed RSA one, and dovecot.conf
            # no longer names the server's certificate as the guide would (it renders it from Postfix's). main.cf's
            # own drift rows compare the guide's settings only, and none of them changed.
            also = {f"certificate / certificate {old}/rsa.pem", "drift / dovecot.conf as the guide renders it"}
            assert red(report.rows) == {*also, *small}
            row = next(r for r in report.rows if r.key == f"tls / no Diffie-Hellman group under 2048 bits on 25 ({V4})")
            assert row.detail == "DHE with a group under 2048 bits (the client said DH_KEY_TOO_SMALL)"
    finally:
        mail.run(["rm", "-rf", "--", old])
    report = check_server("lab:mail", vantage="lab:outside")
    assert red(report.rows) == set()
    for port in (25, 465, 587, 143, 993, 443, 4190):
        row = next(r for r in report.rows if r.key == f"tls / no Diffie-Hellman group under 2048 bits on {port} ({V4})")
        assert row.ok and row.detail == "no DHE offered: ECDHE only", (port, row.detail)


def test_greeting_names_another_host(mail: Connection) -> None:
    with main_cf_changed(mail, "smtpd_banner=vps-1234.provider.example.net ESMTP"):  # a provider's image's
        report = check_server("lab:mail", vantage="lab:outside")
        greeting = "reverse dns / SMTP greeting names the server (as its PTR does)"
        assert red(report.rows) == {greeting}  # not drift: the guide leaves smtpd_banner at Debian's default
        row = next(r for r in report.rows if r.key == greeting)
        other = "vps-1234.provider.example.net"
        assert row.detail == f"{other} ESMTP (names {other}, not {MAIL.fqdn})"
    assert check() == set()


def test_dmarc_reports_to_an_outside_address(mail: Connection, lab: Lab) -> None:
    record = '"v=DMARC1; p=none; rua=mailto:dmarc@reports.example.net"'
    row = "dmarc / DMARC reports of example.org go where they are accepted"
    with dns_changed(lab, "_dmarc.example.org", "TXT", [record]):
        assert check() == {row}  # a valid record all the same: only the destination's consent is missing
        with dns_changed(lab, "example.org._report._dmarc.reports.example.net", "TXT", ['"v=DMARC1"']):
            assert check() == set()


def test_mail_domain_on_a_domain_block_list(mail: Connection, lab: Lab) -> None:
    listed = "example.org.dbl.bl.example.net"  # the lab target's domain list (RFC 5782: the domain as it is)
    with dns_changed(lab, listed, "A", ["127.0.1.2"]):
        report = check_server("lab:mail", vantage="lab:outside")
        assert red(report.rows) == {"block lists / example.org on dbl.bl.example.net"}
        row = next(r for r in report.rows if r.key == "block lists / example.org on dbl.bl.example.net")
        assert row.detail == "listed (127.0.1.2)" and row.part == 3


def test_caa_that_lets_no_ca_issue(mail: Connection, lab: Lab) -> None:
    row = f"certificate / CAA of {MAIL.fqdn} lets a CA issue its certificate"
    with dns_changed(lab, "example.org", "CAA", ['0 issue ";"']):
        assert check() == {row}  # found at the parent: RFC 8659's climb from mail.example.org
        with dns_changed(lab, MAIL.fqdn, "CAA", ['0 issue "letsencrypt.org"']):
            assert check() == set(), "the name's own records apply, not its parent's"
    with dns_changed(lab, "example.org", "CAA", ['0 issue "letsencrypt.org"', '128 tbs "unknown"']):
        report = check_server("lab:mail", vantage="lab:outside")
        assert red(report.rows) == {row}
        shown = next(r for r in report.rows if r.key == row)
        assert "critical property 'tbs'" in shown.detail and shown.part == 2


def test_parked_domain_that_takes_mail(mail: Connection, lab: Lab) -> None:
    parked = "parked.example.org"
    rows = {
        f"parked / {parked} takes no mail (null MX)",
        f"parked / {parked} sends no mail (SPF -all)",
        f"parked / mail in {parked}'s name is refused (DMARC p=reject)",
    }
    with (
        dns_changed(lab, parked, "MX", ["0 ."]),
        dns_changed(lab, parked, "TXT", ['"v=spf1 -all"']),
        dns_changed(lab, f"_dmarc.{parked}", "TXT", ['"v=DMARC1; p=reject"']),
    ):
        report = check_server("lab:mail", vantage="lab:outside", parked_domains=[parked])
        assert rows <= {r.key for r in report.rows} and red(report.rows) == set()
        with dns_changed(lab, parked, "MX", ["10 mail.example.org."]):  # an exchanger forgotten in the zone
            report = check_server("lab:mail", vantage="lab:outside", parked_domains=[parked])
            assert red(report.rows) == {f"parked / {parked} takes no mail (null MX)"}
    assert check() == set(), "without --parked-domain, no parked rows"


def test_dnssec_chain_broken_at_the_registrar(mail: Connection, lab: Lab) -> None:
    """The lab's registrar drops example.org's DS, then publishes one naming no key of the zone: every name whose
    chain runs through example.org turns red, not signed the first time, bogus the second."""
    with dns_changed(lab, "example.org", "DS", [], forget=mail):
        report = check_server("lab:mail", vantage="lab:outside")
        chained = {r.key for r in report.rows if r.key.startswith("dnssec / ")}
        # The mail host's TLSA records live in example.org too: senders ignore them once they are not signed.
        assert len(chained) >= 2 and red(report.rows) == chained | {SERVED_KEY, OWN_DANE}, report.text()
        assert {r.detail for r in report.rows if r.key in chained} == {"not signed: no DS for example.org. in ."}
        assert ROLLOVER not in {r.key for r in report.rows}, "the rollover row waits for signed records"
    with dns_changed(lab, "example.org", "DS", ["4242 13 2 " + "AB" * 32], forget=mail):
        report = check_server("lab:mail", vantage="lab:outside")
        assert red(report.rows) == chained | {SERVED_KEY, OWN_DANE}, report.text()
        said = {r.detail for r in report.rows if r.key in chained}
        bogus = "BOGUS (validating resolvers refuse it): no DNSKEY of example.org. matches its DS at the parent"
        assert said == {bogus}
    assert check() == set()


SERVED_KEY = f"dane / TLSA of {MAIL.fqdn} names the key it serves on 25 (DANE)"
ROLLOVER = f"dane / TLSA of {MAIL.fqdn}: the next key published (rollover)"
OWN_DANE = "dane / Postfix on the server verifies example.org by DANE (its own resolver)"


def test_dane_records_naming_another_key_no_next_key_or_none(mail: Connection, lab: Lab) -> None:
    """The mail host's TLSA records changed at the registrar: naming other keys only (the served-key row red, and the
    rollover one, as no record names the key in use), the key in use alone (the rollover row alone), none at all
    (the served-key row alone, saying so)."""
    name = tlsa_name(MAIL.fqdn)
    in_use = tlsa_311(gather(mail, [PublicKey(KEY)])[0] or "")
    published = list(lookup_at(NAMESERVER.address)(name, "TLSA"))
    assert len(published) == 2 and in_use in published, published
    with dns_changed(lab, name, "TLSA", ["3 1 1 " + "ab" * 32, "3 1 1 " + "cd" * 32], forget=mail):
        report = check_server("lab:mail", vantage="lab:outside")
        assert red(report.rows) == {SERVED_KEY, ROLLOVER, OWN_DANE}, report.text()
        assert "no record names the key served" in next(r.detail for r in report.rows if r.key == SERVED_KEY)
    with dns_changed(lab, name, "TLSA", [in_use], forget=mail):
        assert check() == {ROLLOVER}
    with dns_changed(lab, name, "TLSA", [], forget=mail):
        report = check_server("lab:mail", vantage="lab:outside")
        assert red(report.rows) == {SERVED_KEY, OWN_DANE}, report.text()
        assert next(r.detail for r in report.rows if r.key == SERVED_KEY).startswith(f"no TLSA at {name}")
    assert check() == set()


def test_mta_sts_policy_naming_another_host_then_its_web_server_stopped(mail: Connection) -> None:
    """Section 14's policy served with an mx that is not the server: its row red, nothing else (senders enforcing it
    would refuse to deliver). nginx stopped: the policies cannot be fetched, port 443 is closed, the service is down."""
    policy = "/var/www/mta-sts/example.org.txt"
    saved = mail.read(policy)
    wrong = saved.replace(f"mx: {MAIL.fqdn}".encode(), b"mx: mx.example.net")
    assert wrong != saved
    with on_server(lambda: mail.write(policy, wrong, mode=0o644), lambda: mail.write(policy, saved, mode=0o644)):
        assert check() == {"mta-sts / MTA-STS of example.org"}
    with on_server(commands(mail, ["systemctl", "stop", "nginx"]), commands(mail, ["systemctl", "start", "nginx"])):
        ports = {f"ports / 443 HTTPS (the MTA-STS policies) on {address}" for address in (V4, V6)}
        policies = {"mta-sts / MTA-STS of example.org", "mta-sts / MTA-STS of b.example.org"}
        assert check() == {"services / nginx running", *ports, *policies}
    assert check() == set()


@pytest.fixture
def reader(lab: Lab) -> Iterator[str]:
    """dana@example.net at the lab's receiver, readable over IMAP at the lab's cloud provider, as a reader's account
    at a big provider is; its password where mailkit finds the lab's (the passwords file, on your own server)."""
    from mailkit.lab import cloud_account, cloud_provider, receiver

    outside = lab_connection("outside")
    try:
        receiver.ensure(outside, lab)
        dana = "dana@example.net"
        alice = lab.passwords(["alice@cloud.example.net"])["alice@cloud.example.net"]
        readers = {dana: (lab.passwords([dana])[dana], receiver.RECEIVER.mailbox(dana))}
        cloud_provider.setup(outside, lab.ca, cloud_account.generate(count=3, seed=3), alice, readers)
        yield dana
    finally:
        outside.close()


def test_a_message_read_back_at_another_provider(mail: Connection, lab: Lab, reader: str) -> None:
    # Off unless asked: the row says how to ask, and nothing is sent.
    quiet = check_server("lab:mail", vantage="lab:outside")
    row = next(r for r in quiet.rows if r.group == "sending")
    assert row.skipped and row.detail.startswith("not sent: the only row that sends anything"), row
    # Asked: one message from postmaster@example.org, judged by the receiver's own OpenDKIM, SPF and OpenDMARC.
    cloud = "imap.cloud.example.net"
    asked = check_server("lab:mail", vantage="lab:outside", send_to=reader, read_at=cloud)
    assert red(asked.rows) == set(), asked.text()
    row = next(r for r in asked.rows if r.group == "sending")
    assert not row.skipped and row.detail == "outside.example.net: spf=pass, dkim=pass (example.org), dmarc=pass"
    # Broken: SPF names another host; DKIM still aligns, so the receiver takes it, and says spf=fail.
    with dns_changed(lab, "example.org", "TXT", ['"v=spf1 a:outside.example.net -all"']):
        broken = check_server("lab:mail", vantage="lab:outside", send_to=reader, read_at=cloud)
        assert red(broken.rows) == {"spf / SPF of example.org", f"sending / {row.name}"}
        said = next(r for r in broken.rows if r.group == "sending").detail
        assert said.startswith("outside.example.net: spf=fail, dkim=pass (example.org), dmarc=pass"), said


def test_the_server_asking_a_resolver_that_does_not_validate(mail: Connection) -> None:
    # As after 'apt install' of a package that rewrites resolv.conf, or a restore without section 13's files: Postfix
    # goes on sending, without DANE, and says nothing. The lab's nameserver answers, but proves nothing.
    saved = mail.read("/etc/resolv.conf")
    restart = ["systemctl", "restart", "postfix"]
    elsewhere = commands(mail, ["sh", "-c", f'echo "nameserver {NAMESERVER.address}" > /etc/resolv.conf'], restart)

    def put_back() -> None:
        mail.write("/etc/resolv.conf", saved, mode=0o644)
        mail.run(restart)

    row = OWN_DANE
    with on_server(elsewhere, put_back):
        report = check_server("lab:mail", vantage="lab:outside")
        assert red(report.rows) == {row}, report.text()
        said = next(r for r in report.rows if r.key == row).detail
        assert not said.startswith("Verified"), said
    assert check() == set()
