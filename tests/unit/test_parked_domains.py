"""A domain that sends and takes no mail (`mailkit check --parked-domain`): a null MX (RFC 7505), `v=spf1 -all` and
DMARC `p=reject`, each its own row, each red on its own."""

from __future__ import annotations

import pytest

from mailkit.core.errors import MailkitError
from mailkit.status.dnschecks import parked_rows

PARKED = "parked.example.org"
GOOD = {
    (PARKED, "MX"): ("0 .",),
    (PARKED, "TXT"): ('"v=spf1 -all"',),
    (f"_dmarc.{PARKED}", "TXT"): ('"v=DMARC1; p=reject"',),
}
ROWS = (
    f"parked / {PARKED} takes no mail (null MX)",
    f"parked / {PARKED} sends no mail (SPF -all)",
    f"parked / mail in {PARKED}'s name is refused (DMARC p=reject)",
)


def _red(zone: dict[tuple[str, str], tuple[str, ...]]) -> dict[str, str]:
    rows = parked_rows([PARKED], lambda name, rtype: zone.get((name, rtype), ()))
    assert [r.key for r in rows] == list(ROWS) and all(r.part == 3 for r in rows)
    return {r.key: r.detail for r in rows if not r.ok}


def test_a_parked_domain_that_says_so_three_times_is_green() -> None:
    assert _red(GOOD) == {}


@pytest.mark.parametrize(
    ("change", "row", "detail"),
    [
        ({(PARKED, "MX"): ()}, 0, "no MX: senders try its A and AAAA records instead (RFC 5321 section 5.1)"),
        ({(PARKED, "MX"): ("10 mail.example.org.",)}, 0, "takes mail at mail.example.org"),
        ({(PARKED, "MX"): ("0 .", "10 mail.example.org.")}, 0,
         "a null MX beside others (RFC 7505 allows it alone): . mail.example.org"),
        ({(PARKED, "TXT"): ('"v=spf1 mx -all"',)}, 1, "v=spf1 mx -all (lets some host send)"),
        ({(PARKED, "TXT"): ()}, 1, "no SPF record"),
        ({(f"_dmarc.{PARKED}", "TXT"): ('"v=DMARC1; p=none"',)}, 2,
         "v=DMARC1; p=none (p=none: failures are delivered)"),
        ({(f"_dmarc.{PARKED}", "TXT"): ()}, 2, "no DMARC record"),
    ],
)  # fmt: skip
def test_each_missing_statement_turns_its_own_row_red(
    change: dict[tuple[str, str], tuple[str, ...]], row: int, detail: str
) -> None:
    assert _red({**GOOD, **change}) == {ROWS[row]: detail}


def test_a_resolver_that_fails_is_cannot_tell_never_green() -> None:
    def failing(name: str, rtype: str) -> tuple[str, ...]:
        raise MailkitError(f"no answer for {name} {rtype}: SERVFAIL")

    (row,) = parked_rows([PARKED], failing)
    assert not row.ok and row.detail.startswith("cannot tell: no answer for parked.example.org MX")
