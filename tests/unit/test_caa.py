"""CAA (RFC 8659) in `mailkit check`: the record set that applies to the server's name, and whether it lets a CA
issue its certificate; the world writes these records, so what does not parse or does not answer is said, not
believed."""

from __future__ import annotations

import pytest

from mailkit.core.errors import MailkitError
from mailkit.domain.published import CAA_CLIMB_NAMES, relevant_caa
from mailkit.status.dnschecks import caa_row

HOST = "mail.example.org"


def _zone(records: dict[str, tuple[str, ...]]):  # type: ignore[no-untyped-def]
    asked: list[str] = []

    def lookup(name: str, rtype: str) -> tuple[str, ...]:
        assert rtype == "CAA"
        asked.append(name)
        return records.get(name, ())

    return lookup, asked


@pytest.mark.parametrize(
    ("records", "ok", "detail"),
    [
        ({}, True, "none: any CA may issue (CAA is optional)"),
        ({"example.org": ('0 issue "letsencrypt.org"',)}, True, "at example.org: letsencrypt.org may issue"),
        # The name's own records win over its parent's, even when the parent's would let no CA issue.
        ({HOST: ('0 issue "pki.goog; cansignhttpexchanges=yes"',), "example.org": ('0 issue ";"',)}, True,
         f"at {HOST}: pki.goog may issue"),
        ({"example.org": ('0 iodef "mailto:hostmaster@example.org"',)}, True,
         "at example.org: no issue property: any CA may issue"),
        ({"example.org": ('0 issue ";"',)}, False,
         'at example.org: issue ";" lets no CA issue: the next renewal fails'),
        ({"example.org": ('0 issue "letsencrypt.org"', '128 tbs "unknown"')}, False,
         "at example.org: critical property 'tbs' that no CA knows: none will issue"),
        ({"example.org": ('0 issue "letsencrypt.org"', "0 issue letsencrypt.org")}, False,
         "at example.org: a CAA record does not parse: 0 issue letsencrypt.org"),
    ],
)  # fmt: skip
def test_the_record_set_that_applies_decides(records: dict[str, tuple[str, ...]], ok: bool, detail: str) -> None:
    lookup, _ = _zone(records)
    row = caa_row(HOST, lookup)
    assert (row.ok, row.detail, row.part) == (ok, detail, 2)
    assert row.key == f"certificate / CAA of {HOST} lets a CA issue its certificate"
    assert ok or "02-dovecot.ipynb section 3" in row.fix


def test_the_climb_stops_at_the_first_name_with_records_and_never_asks_more_than_its_bound() -> None:
    lookup, asked = _zone({"example.org": ('0 issue "letsencrypt.org"',)})
    assert relevant_caa("a.b.mail.example.org", lookup)[0] == "example.org"
    assert asked == ["a.b.mail.example.org", "b.mail.example.org", "mail.example.org", "example.org"]
    deep, asked = _zone({})
    assert relevant_caa(".".join(["x"] * 40) + ".example.org", deep) == ("", ())
    assert len(asked) == CAA_CLIMB_NAMES


def test_a_hostile_record_is_cut_and_a_resolver_failure_is_cannot_tell() -> None:
    lookup, _ = _zone({"example.org": ("0 issue \x1b[31m" + "x" * 5000,)})
    row = caa_row(HOST, lookup)
    assert not row.ok and len(row.detail) < 140 and "\x1b" not in row.detail

    def failing(name: str, rtype: str) -> tuple[str, ...]:
        raise MailkitError(f"no answer for {name} {rtype}: timed out")

    row = caa_row(HOST, failing)
    assert not row.ok and row.detail.startswith("cannot tell: no answer for mail.example.org CAA")
