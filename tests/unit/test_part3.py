"""Part 3's desired state, without a host: records, keys, rspamd files and refusals of bad parameters."""

from __future__ import annotations

import pytest

from mailkit.core.resources import File, GeneratedKey
from mailkit.core.values import ValueRejected
from mailkit.domain.records import txt_text
from mailkit.guide.part1 import Part1
from mailkit.guide.part3 import DKIM_DIR, NETWORK_MODULES, Part3

KEY = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + "k" * 342 + "IDAQAB"


def test_records_cover_every_domain_and_the_helo_name() -> None:
    part3 = Part3(Part1("example.org", ["b.example.org"]))
    records = {(r.name, r.rtype): [txt_text(v) for v in r.values] for r in part3.records({"example.org": KEY})}
    assert records[("mail.example.org", "TXT")] == ["v=spf1 a -all"]
    assert records[("example.org", "TXT")] == records[("b.example.org", "TXT")] == ["v=spf1 mx -all"]
    assert records[("s202611._domainkey.example.org", "TXT")] == [f"v=DKIM1; k=rsa; p={KEY}"]
    assert ("s202611._domainkey.b.example.org", "TXT") not in records, "no key read back, no record"
    assert records[("_dmarc.b.example.org", "TXT")] == ["v=DMARC1; p=none; rua=mailto:postmaster@b.example.org"]
    assert all("pct=" not in v for values in records.values() for v in values), "RFC 9989 has no pct"


def test_keys_are_made_on_the_host_for_rspamd_only() -> None:
    keys = [r for r in Part3(Part1("example.org", ["b.example.org"])).dkim_keys() if isinstance(r, GeneratedKey)]
    assert [k.path for k in keys] == [f"{DKIM_DIR}/example.org.s202611.key", f"{DKIM_DIR}/b.example.org.s202611.key"]
    assert {(k.owner, k.group, k.mode, k.bits, k.service) for k in keys} == {("root", "_rspamd", 0o640, 2048, None)}


def test_network_modules_are_off_only_offline() -> None:
    def switched_off(part3: Part3) -> set[str]:
        return {
            r.path
            for r in part3.rspamd_config()
            if isinstance(r, File) and r.present and "enabled = false" in r.data.decode()
        }

    assert switched_off(Part3(Part1(), offline=True)) == {f"/etc/rspamd/local.d/{m}.conf" for m in NETWORK_MODULES}
    assert switched_off(Part3(Part1())) == set(), "a real server keeps them (and has the files removed)"
    signing = Part3(Part1(), "s2027a").rspamd_config()[0]
    assert isinstance(signing, File) and 'selector = "s2027a";' in signing.data.decode()
    assert "sign_local = true;" in signing.data.decode() and "sign_authenticated = true;" in signing.data.decode()


@pytest.mark.parametrize(("field", "value"), [("selector", "2026 11"), ("selector", "S_1"), ("dmarc_policy", "block")])
def test_bad_parameters_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValueRejected):
        Part3(Part1(), **{field: value})


def test_rotation_makes_new_keys_under_a_new_name_and_retires_the_old_ones_whole() -> None:
    old = Part3(Part1("example.org", ["b.example.org"]))
    new = old.rotated("s202612")
    assert new.key_path("example.org").endswith("example.org.s202612.key") and new.part1 is old.part1
    both = old.dkim_records({"example.org": KEY}) + new.dkim_records({"example.org": KEY + "x"})
    assert [r.name for r in both] == ["s202611._domainkey.example.org", "s202612._domainkey.example.org"]
    gone = old.retired_records()
    assert [(r.name, r.values) for r in gone] == [
        ("s202611._domainkey.example.org", ()),
        ("s202611._domainkey.b.example.org", ()),
    ]
    removed = old.retire()
    assert all(isinstance(r, File) and not r.present and r.secret for r in removed)
    assert [r.path for r in removed if isinstance(r, File)] == [old.key_path(d) for d in old.domains]


class _Maildir:
    """Stands in for the outside host: a Maildir listing and the files in it (oldest first)."""

    def __init__(self, files: list[bytes]) -> None:
        self.files = {f"/m/new/{i}": raw for i, raw in enumerate(files)}

    def run(self, argv: list[str], **_: object) -> object:
        from mailkit.core.result import Result

        return Result("find", "".join(f"{i} {path}\n" for i, path in enumerate(self.files)), "", 0)

    def read(self, path: str) -> bytes:
        return self.files[path]


def test_the_newest_user_message_signed_by_a_selector_is_found_even_when_folded() -> None:
    from mailkit.guide.part3_checks import signed_message, user_message

    def message(subject: str, selector: str) -> bytes:
        signature = f"DKIM-Signature: v=1; a=rsa-sha256; d=example.org;\r\n\ts={selector}; h=from; bh=x; b=y\r\n"
        return (signature + f"Subject: {subject}\r\n\r\nbody\r\n").encode()

    from mailkit.lab.lab_target import LabReceiver

    outside = _Maildir(
        [message("mailkit part 3 0000000a", "s202611"), message("mailkit part 3 0000000b", "s202612"),
         message("mailkit forged 0000000c", "s202611")]
    )  # fmt: skip
    receiver = LabReceiver(outside)  # type: ignore[arg-type]
    assert b"0000000a" in (signed_message(receiver, "s202611") or b"")
    assert b"0000000b" in (signed_message(receiver, "s202612") or b"")
    assert signed_message(receiver, "s2026") is None
    assert b"0000000b" in (user_message(receiver) or b""), "the newest user message, not the forged one"
    assert user_message(None) is None, "no receiver (your own server): nothing to explain"
