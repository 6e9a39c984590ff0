"""DNS records as desired state: planning against answers, TXT splitting, names refused before any query."""

from __future__ import annotations

import pytest

from mailkit.core.values import ValueRejected
from mailkit.domain.records import RecordSet, plan, record_name, txt, txt_text, zone_text

KEY = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + "x" * 350 + "IDAQAB"


def test_a_dkim_record_longer_than_255_bytes_is_split_and_reads_back_whole() -> None:
    value = f"v=DKIM1; k=rsa; p={KEY}"
    rdata = txt(value)
    strings = rdata.split('" "')
    assert len(strings) == 2 and all(len(s.strip('"')) <= 255 for s in strings)
    assert txt_text(rdata) == value


def test_plan_shows_only_what_the_nameserver_answers_differently() -> None:
    answers = {
        ("example.org", "TXT"): ('"v=spf1 mx -all"',),
        ("_dmarc.example.org", "TXT"): ('"v=DMARC1; p=none"',),
        ("s1._domainkey.example.org", "TXT"): (),
    }
    wanted = [
        RecordSet("example.org", "TXT", (txt("v=spf1 mx -all"),)),
        RecordSet("_dmarc.example.org", "TXT", (txt("v=DMARC1; p=reject"),)),
        RecordSet("s1._domainkey.example.org", "TXT", (txt(f"v=DKIM1; k=rsa; p={KEY}"),)),
    ]
    asked: list[tuple[str, str]] = []

    def lookup(name: str, rtype: str) -> tuple[str, ...]:
        asked.append((name, rtype))
        return answers[(name, rtype)]

    the_plan = plan(wanted, lookup, "ns.example.net")
    assert [c.wanted.name for c in the_plan.changes] == ["_dmarc.example.org", "s1._domainkey.example.org"]
    assert '-_dmarc.example.org. IN TXT "v=DMARC1; p=none"' in str(the_plan)
    assert '+_dmarc.example.org. 300 IN TXT "v=DMARC1; p=reject"' in str(the_plan)
    assert len(asked) == 3
    same = plan(wanted[:1], lookup, "ns.example.net")
    assert not same and str(same) == "DNS: no change (as answered by ns.example.net)"
    # The same key split differently by a provider's zone editor is the same record.
    answers[("s1._domainkey.example.org", "TXT")] = (f'"v=DKIM1; k=rsa; " "p={KEY[:100]}" "{KEY[100:]}"',)
    assert not plan(wanted[2:], lookup, "ns.example.net")


def test_zone_text_is_ready_to_paste() -> None:
    text = zone_text([RecordSet("example.org", "MX", ("10 mail.example.org.",))])
    assert text == "example.org. 300 IN MX 10 mail.example.org.\n"


@pytest.mark.parametrize("name", ["exa mple.org", "-bad.example.org", "example", "ex\nample.org", "straße.de"])
def test_bad_record_names_are_refused(name: str) -> None:
    with pytest.raises(ValueRejected):
        record_name(name)


@pytest.mark.parametrize("value", ['say "hi"', "line\nbreak", "back\\slash", "café"])
def test_txt_values_that_would_break_the_record_are_refused(value: str) -> None:
    with pytest.raises(ValueRejected):
        txt(value)
