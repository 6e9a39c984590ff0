"""The ACME certificate resource, the provider lab's registrar and the Sieve check, on recorded values (no host)."""

from __future__ import annotations

import pytest

from mailkit.core.checks import CheckResult
from mailkit.core.resources.acme import LETS_ENCRYPT, AcmeCertificate, AcmeLineage
from mailkit.core.result import Result
from mailkit.core.values import ValueRejected
from mailkit.guide.dane import KEEP_ASKING_A_SILENT_ROOT
from mailkit.lab.provider import parse_zone_text, unbound_conf
from mailkit.server.target import zone_text_with_deletions

PEBBLE = "https://acme.example.net:14000/dir"


def test_no_lineage_means_certbot_runs_with_every_value_on_its_command_line() -> None:
    wanted = AcmeCertificate("mail.example.org", PEBBLE, "postmaster@example.org")
    change = wanted.compare([None])
    assert change is not None and change.run is not None and change.script is None
    assert "HTTP-01 on port 80" in change.diff
    assert wanted.argv() == ["certbot", "certonly", "--standalone", "--non-interactive", "--agree-tos", "--reuse-key",
                             "--email", "postmaster@example.org", "--server", PEBBLE, "--cert-name",
                             "mail.example.org", "-d", "mail.example.org"]  # fmt: skip
    no_mail = AcmeCertificate("mail.example.org").argv()
    assert "--register-unsafely-without-email" in no_mail and LETS_ENCRYPT in no_mail


def test_a_lineage_from_the_same_ca_for_the_name_is_no_change_and_another_ca_is_one() -> None:
    wanted = AcmeCertificate("mail.example.org", PEBBLE)
    assert wanted.compare([(PEBBLE, ("mail.example.org",))]) is None
    moved = wanted.compare([(LETS_ENCRYPT, ("mail.example.org",))])
    assert moved is not None and f"-certificate from {LETS_ENCRYPT}" in moved.diff
    assert wanted.compare([(PEBBLE, ("other.example.org",))]) is not None
    assert AcmeLineage("mail.example.org").parse("absent\n", 0) is None


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("ACME_SERVER", {"server": "http://acme.example.net/dir"}),
        ("ACME_SERVER", {"server": "https://acme.example.net/dir; rm -rf /"}),
        ("ACME_EMAIL", {"email": "postmaster"}),
        ("HOSTNAME", {"hostname": "mail example.org"}),
    ],
)
def test_values_that_would_reach_certbots_command_line_are_checked(field: str, kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueRejected, match=field):
        AcmeCertificate(**{"hostname": "mail.example.org", **kwargs})


def test_zone_text_round_trips_through_the_registrar_parser_deletions_included() -> None:
    from mailkit.domain.records import RecordSet, txt

    records = [
        RecordSet("s1._domainkey.example.org", "TXT", (txt("v=DKIM1; k=rsa; p=" + "A" * 300),)),
        RecordSet("_dmarc.example.org", "TXT", (txt("v=DMARC1; p=none"),)),
        RecordSet("s0._domainkey.example.org", "TXT", ()),
    ]
    parsed = parse_zone_text(zone_text_with_deletions(records))
    assert [(r.name, r.rtype, r.values) for r in parsed] == [(r.name, r.rtype, r.values) for r in records]
    with pytest.raises(Exception, match="line 1"):
        parse_zone_text("example.org. IN TXT missing-ttl\n")


def test_the_resolver_answers_the_labs_reverse_zones_and_validates_from_the_labs_root() -> None:
    conf = unbound_conf(". IN DS 4242 13 2 ABCD")
    assert 'local-zone: "100.51.198.in-addr.arpa." nodefault' in conf
    assert 'module-config: "validator iterator"' in conf and "interface: 198.51.100.54" in conf
    assert 'trust-anchor: ". IN DS 4242 13 2 ABCD"' in conf
    assert all(line in conf.splitlines() for line in KEEP_ASKING_A_SILENT_ROOT), "as section 13's resolver does"


class _SieveTest:
    """Stands in for the server: sieve-test answers as a script that files nothing into Junk would."""

    def run(self, argv: list[str], **_: object) -> Result:
        said = "Performed actions:\n\n  (none)\n\nImplicit keep:\n\n * store message in folder: INBOX\n"
        return Result(" ".join(argv), said, "", 0)


def test_the_sieve_check_fails_when_spam_is_kept_in_inbox() -> None:
    from mailkit.guide.part4_checks import sieve_files_spam

    rows = sieve_files_spam(_SieveTest())  # type: ignore[arg-type]
    assert [(r.ok, r.detail) for r in rows] == [(False, "INBOX"), (True, "INBOX")]
    assert all(isinstance(r, CheckResult) and "sieve-test" in r.name for r in rows)
