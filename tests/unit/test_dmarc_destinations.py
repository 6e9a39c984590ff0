"""DMARC aggregate reports sent outside the domain's organization need the destination's consent (RFC 9989's
reporting companion, "verifying external destinations"); the organization is found by RFC 9989's DNS tree walk."""

from __future__ import annotations

from mailkit.domain.published import organizational_domain, unauthorized_destinations
from mailkit.status.dnschecks import dmarc_rows

DMARC = "v=DMARC1; p=none; rua=mailto:postmaster@example.org"


def lookup_of(answers: dict[str, tuple[str, ...]]):
    asked: list[str] = []

    def lookup(name: str, rtype: str) -> tuple[str, ...]:
        asked.append(name)
        return answers.get(name, ()) if rtype == "TXT" else ()

    lookup.asked = asked  # type: ignore[attr-defined]
    return lookup


def test_the_tree_walk_finds_the_organization_without_a_public_suffix_list() -> None:
    answers = {"_dmarc.example.org": ('"v=DMARC1; p=none"',), "_dmarc.b.example.org": ('"v=DMARC1; p=reject"',)}
    assert organizational_domain("b.example.org", lookup_of(answers)) == "example.org"
    assert organizational_domain("x.y.example.net", lookup_of({})) == "x.y.example.net"
    # a public suffix's own record (psd=y): the organization is the name just below it
    psd = {"_dmarc.example.net": ('"v=DMARC1; p=none; psd=y"',)}
    assert organizational_domain("mail.shop.example.net", lookup_of(psd)) == "shop.example.net"
    # psd=n says "I am the organization"
    own = {"_dmarc.shop.example.net": ('"v=DMARC1; p=none; psd=n"',), **psd}
    assert organizational_domain("a.b.shop.example.net", lookup_of(own)) == "shop.example.net"


def test_a_long_name_costs_at_most_eight_queries() -> None:
    lookup = lookup_of({})
    organizational_domain(".".join(f"l{i}" for i in range(40)) + ".example.org", lookup)
    assert len(lookup.asked) <= 8  # type: ignore[attr-defined]


def test_the_guides_own_record_and_a_sibling_in_the_organization_need_no_consent() -> None:
    answers = {"_dmarc.example.org": (f'"{DMARC}"',)}
    assert unauthorized_destinations("example.org", DMARC, lookup_of(answers)) == []
    sibling = "v=DMARC1; p=none; rua=mailto:postmaster@example.org"
    assert unauthorized_destinations("b.example.org", sibling, lookup_of(answers)) == []


def test_an_outside_destination_needs_its_consent_record() -> None:
    record = "v=DMARC1; p=none; rua=mailto:dmarc@reports.example.net"
    answers = {"_dmarc.example.org": (f'"{record}"',)}
    rows = dmarc_rows(["example.org"], lookup_of(answers))
    assert [r.ok for r in rows] == [True, False]
    assert rows[1].detail == "reports.example.net has not agreed (no example.org._report._dmarc.reports.example.net)"
    assert "example.org._report._dmarc.reports.example.net. TXT" in rows[1].fix
    answers["example.org._report._dmarc.reports.example.net"] = ('"v=DMARC1"',)
    rows = dmarc_rows(["example.org"], lookup_of(answers))
    assert [r.ok for r in rows] == [True, True] and rows[1].detail == "rua to reports.example.net"


def test_no_rua_is_allowed_and_said() -> None:
    rows = dmarc_rows(["example.org"], lookup_of({"_dmarc.example.org": ('"v=DMARC1; p=none"',)}))
    assert rows[1].ok and rows[1].detail.startswith("no rua")


def test_a_hostile_record_is_checked_as_domains_and_followed_only_so_far() -> None:
    bad = "v=DMARC1; p=none; rua=mailto:a@" + "x" * 70 + ".example.net"
    rows = dmarc_rows(["example.org"], lookup_of({"_dmarc.example.org": (f'"{bad}"',)}))
    assert not rows[1].ok and rows[1].detail.startswith("rua names no domain:") and len(rows[1].detail) < 120
    many = "v=DMARC1; p=none; rua=" + ",".join(f"mailto:r@d{i}.example.net" for i in range(50))
    lookup = lookup_of({"_dmarc.example.org": (f'"{many}"',)})
    rows = dmarc_rows(["example.org"], lookup)
    assert not rows[1].ok and rows[1].detail == "50 report domains (more than 5 are not followed)"
    assert len(lookup.asked) < 10  # type: ignore[attr-defined]


def test_a_resolver_that_fails_makes_the_row_say_so_not_crash() -> None:
    from mailkit.core.errors import MailkitError

    record = "v=DMARC1; p=none; rua=mailto:dmarc@reports.example.net"

    def lookup(name: str, rtype: str) -> tuple[str, ...]:
        if name == "_dmarc.example.org":
            return (f'"{record}"',)
        raise MailkitError(f"no answer for {name} {rtype}: timeout")

    rows = dmarc_rows(["example.org"], lookup)
    assert not rows[1].ok and rows[1].detail.startswith("cannot tell: no answer for")
