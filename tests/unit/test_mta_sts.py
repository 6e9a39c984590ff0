"""Part 3 section 14 (issue 24 item 3): MTA-STS hosted on the server, TLS-RPT; mailkit's own logic, without a host."""

from __future__ import annotations

import pytest

from mailkit.core.errors import MailkitError
from mailkit.core.resources import AcmeCertificate, File, Packages
from mailkit.domain.mtasts import parse_policy, policy_problems
from mailkit.guide import mta_sts_checks
from mailkit.guide.mta_sts import NGINX_CONF, WEB_RENEWAL_HOOK, MtaSts, fetcher, policy_id
from mailkit.guide.part1 import Part1
from mailkit.guide.part2 import Part2

ACME = "https://acme.example.net/dir"


def _sts(acme: bool = False, source: str = "issued") -> MtaSts:
    part2 = Part2(Part1(), acme_server=ACME if acme else None)
    return MtaSts(part2, source="acme" if acme else source)


def test_the_policy_names_the_server_and_its_id_changes_exactly_when_it_does() -> None:
    sts = _sts()
    policy = parse_policy(sts.policy_text())
    assert policy_problems(policy, "mail.example.org") == []
    assert policy["mode"] == ["testing"] and sts.enforcing().mode == "enforce"
    assert policy_id(sts.policy_text()) == policy_id(_sts().policy_text()), "the same policy, the same id"
    assert policy_id(sts.enforcing().policy_text()) != policy_id(sts.policy_text())
    assert policy_id(sts.policy_text()).isalnum() and len(policy_id(sts.policy_text())) <= 32  # RFC 8461 3.1
    with pytest.raises(MailkitError, match="mode"):
        MtaSts(sts.part2, mode="strict")
    with pytest.raises(MailkitError, match="max_age"):
        MtaSts(sts.part2, max_age=60)


def test_certificates_from_acme_from_the_issuer_or_already_on_the_server() -> None:
    acme = _sts(acme=True).certificates()
    assert [r.hostname for r in acme if isinstance(r, AcmeCertificate)] == [
        "mta-sts.example.org",
        "mta-sts.b.example.org",
    ]
    assert any(isinstance(r, File) and r.path == WEB_RENEWAL_HOOK and r.mode == 0o755 for r in acme)
    issued = {name: (b"CHAIN", b"KEY") for name in _sts().web_names}
    files = {r.path: r for r in _sts().certificates(issued) if isinstance(r, File)}
    key = files["/etc/ssl/private/mta-sts.example.org.key"]
    assert key.mode == 0o600 and key.secret and files["/etc/ssl/certs/mta-sts.example.org.pem"].mode == 0o644
    with pytest.raises(MailkitError, match=r"no certificate for mta-sts\.b\.example\.org"):
        _sts().certificates({"mta-sts.example.org": (b"CHAIN", b"KEY"), "mta-sts.b.example.org": (None, None)})
    on_server = _sts(source="server")
    assert on_server.certificates() == [], "nothing to upload: nginx -t refuses to go live without them"
    assert "ssl_certificate /etc/ssl/certs/mta-sts.example.org.pem;" in on_server.nginx_config()
    with pytest.raises(MailkitError, match="certificates from"):
        _sts(source="elsewhere")


def test_nginx_serves_443_only_each_policy_at_its_name_and_is_checked_before_it_goes_live() -> None:
    sts = _sts(acme=True)
    conf = sts.nginx_config()
    assert "listen 80" not in conf and "[::]:80" not in conf, "port 80 stays certbot's"
    assert conf.count("listen 443 ssl") == 3 and "default_server" in conf
    assert "server_name mta-sts.b.example.org;" in conf
    assert "ssl_certificate /etc/letsencrypt/live/mta-sts.b.example.org/fullchain.pem;" in conf
    assert "alias /var/www/mta-sts/b.example.org.txt;" in conf
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in conf
    install = sts.install()
    kinds = [type(r).__name__ for r in install]
    assert kinds[:2] == ["AcmeCertificate", "AcmeCertificate"] and kinds[-1] == "Packages", "certbot before nginx"
    issued = _sts().install({name: (b"CHAIN", b"KEY") for name in _sts().web_names})
    assert isinstance(issued[0], Packages) and isinstance(issued[1], File) and issued[1].service is None
    served = _sts().web_server({name: (b"CHAIN", b"KEY") for name in _sts().web_names})
    assert isinstance(served[0], File) and served[0].service == "nginx", "once served, a new certificate reloads nginx"
    resources = sts.web_server()
    assert resources[-1] == next(r for r in resources if isinstance(r, File) and r.path == NGINX_CONF)
    assert not any(isinstance(r, Packages) for r in resources), "the configuration in an apply after install"
    nginx = next(r for r in resources if isinstance(r, File) and r.path == NGINX_CONF)
    assert nginx.check[:3] == ("nginx", "-t", "-q") and nginx.service == "nginx"
    assert any(isinstance(r, Packages) and r.names == ("nginx",) for r in install)


def test_the_id_published_is_the_served_policys_and_another_policy_served_publishes_nothing() -> None:
    sts = _sts()
    served = sts.served(lambda domain: sts.policy_text().replace("\n", "\r\n"))  # CRLF, as RFC 8461 allows
    records = {r.name: r.values for r in sts.records(served)}
    assert records["_mta-sts.example.org"] == (f'"v=STSv1; id={policy_id(served["example.org"])}"',)
    assert records["_smtp._tls.b.example.org"] == ('"v=TLSRPTv1; rua=mailto:postmaster@b.example.org"',)
    names = {r.name: r.values for r in sts.names_first()}
    assert names == {"mta-sts.example.org": ("mail.example.org.",), "mta-sts.b.example.org": ("mail.example.org.",)}
    old = sts.enforcing().policy_text()
    with pytest.raises(
        MailkitError, match=r"mta-sts\.example\.org.*serves another policy: version: STSv1 \| mode: enforce"
    ):
        sts.served(lambda domain: old)
    with pytest.raises(MailkitError, match="not read back"):
        sts.records({"example.org": sts.policy_text()})


def test_the_checks_name_a_stale_id_a_missing_policy_and_a_missing_report_address() -> None:
    sts = _sts()
    text = sts.policy_text()
    records = {
        "_mta-sts.example.org": ('"v=STSv1; id=20260101"',),  # an id of another policy
        "_smtp._tls.example.org": ('"v=TLSRPTv1; rua=mailto:postmaster@example.org"',),
    }

    def fetch(domain: str) -> str:
        if domain == "b.example.org":
            raise MailkitError("https://mta-sts.b.example.org: the certificate does not verify (Hostname mismatch)")
        return text

    table = mta_sts_checks.verify(sts, lambda name, rtype: records.get(name, ()), fetch)
    seen = {r.name: (r.ok, r.detail) for r in table}
    assert seen["policy of example.org served over HTTPS"][0]
    ok, detail = seen["_mta-sts.example.org names the served policy"]
    assert not ok and "senders keep the policy they have" in detail and policy_id(text) in detail
    refused = "https://mta-sts.b.example.org: the certificate does not verify (Hostname mismatch)"
    assert seen["policy of b.example.org served over HTTPS"] == (False, refused)
    assert seen["_smtp._tls.example.org asks for TLS reports"][0]
    assert seen["_smtp._tls.b.example.org asks for TLS reports"] == (False, "no record")


def test_the_fetcher_needs_an_address_and_skips_a_cname_target() -> None:
    with pytest.raises(MailkitError, match="publish its CNAME first"):
        fetcher(lambda name, rtype: ("mail.example.org.",) if rtype == "A" else (), None)("example.org")


def test_port_443_is_part_3s_and_its_tls_rows_point_at_the_web_server() -> None:
    from mailkit.status.outside import refusal_rows, tls_rows

    weak = {"tls1_0": "ACCEPTED: TLSv1 AES128-SHA", "tls1_1": "refused: x", "insufficient_ciphers": "refused: x"}
    seen = {
        "443": {"tls": {"version": "TLSv1.3", "days_left": 80.0}, "refused": weak},
        "4190": {"tls": {"version": "TLSv1.3", "days_left": 80.0}, "refused": weak},
    }
    rows = {r.name: r for r in refusal_rows(seen, [443, 4190], "198.51.100.25")}
    web, sieve = (
        rows["TLS 1.0 and 1.1 refused on 443 (198.51.100.25)"],
        rows["TLS 1.0 and 1.1 refused on 4190 (198.51.100.25)"],
    )
    assert not web.ok and web.part == 3 and "section 14" in web.fix and "nginx" in web.fix
    assert not sieve.ok and sieve.part == 2 and "02-dovecot" in sieve.fix, "the port after 443 keeps the mail fix"
    cert = {r.name: r for r in tls_rows(seen, [443, 4190], "mail.example.org", "198.51.100.25")}
    assert cert["TLS on 443 (198.51.100.25)"].part == 3 and cert["TLS on 4190 (198.51.100.25)"].part == 4
