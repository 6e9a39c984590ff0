"""The RFC 2136 registrar: its key file and its zone text come from a person, so both are hostile until read.

Updates against a real BIND are proven in the lab (tests/lab/test_85_workshop.py, a student's own key).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailkit.cli import main
from mailkit.core.errors import UsageError
from mailkit.domain.registrar import MAX_KEY_FILE, MAX_ZONE_TEXT, parse_zone_text, read_tsig_key

SECRET = "c3R1ZGVudDAxLXNlY3JldA=="
KEY = f'key "student01.example.org." {{\n\talgorithm hmac-sha256;\n\tsecret "{SECRET}";\n}};\n'


def _key_file(tmp_path: Path, text: str = KEY, mode: int = 0o600) -> Path:
    path = tmp_path / "dns.key"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_key_as_tsig_keygen_writes_it_is_read(tmp_path: Path) -> None:
    key = read_tsig_key(_key_file(tmp_path, "# made by tsig-keygen\n" + KEY))
    assert (key.name, key.algorithm, key.secret) == ("student01.example.org.", "hmac-sha256", SECRET)
    assert SECRET not in repr(key)


@pytest.mark.parametrize(
    ("text", "mode", "says"),
    [
        (KEY, 0o644, "can be read by others"),
        (KEY.replace("hmac-sha256", "hmac-md5"), 0o600, "is not one of"),
        ('key "a." { algorithm hmac-sha256; secret "not base64!!!!!!!!"; };', 0o600, "one statement"),
        (KEY + KEY, 0o600, "one statement"),
        ("x" * (MAX_KEY_FILE + 10), 0o600, "longer than a key file"),
    ],
)
def test_a_bad_key_file_is_refused_without_showing_it(tmp_path: Path, text: str, mode: int, says: str) -> None:
    with pytest.raises(UsageError, match=says) as caught:
        read_tsig_key(_key_file(tmp_path, text, mode))
    assert SECRET not in str(caught.value)


def test_a_key_file_is_never_read_through_a_link(tmp_path: Path) -> None:
    real = _key_file(tmp_path)
    link = tmp_path / "link.key"
    link.symlink_to(real)
    with pytest.raises(UsageError, match="it is a symlink"):
        read_tsig_key(link)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UsageError, match="not a regular file"):
        read_tsig_key(tmp_path / "fifo")


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("exa$mple.org. 300 IN TXT x", "is not a DNS name"),
        ("example.org. 300 IN SPF x", "record type"),
        ("example.org. 99999999 IN TXT x", "TTL up to"),
        ("example.org. IN TXT x", "not 'NAME TTL IN TYPE VALUE'"),
        ("; delete ../../etc TXT", "is not a DNS name"),
    ],
)
def test_zone_text_that_does_not_parse_is_refused_by_line_before_anything_is_sent(line: str, says: str) -> None:
    good = 'student01.example.org. 300 IN TXT "v=spf1 mx -all"'
    with pytest.raises(UsageError, match=f"line 2: .*{re.escape(says)}"):
        parse_zone_text(f"{good}\n{line}\n")
    with pytest.raises(UsageError, match="longer than"):
        parse_zone_text(good + "\n" + ";" * MAX_ZONE_TEXT)


def test_the_names_the_guide_publishes_parse() -> None:
    text = (
        'student01.example.org. 300 IN TXT "v=spf1 mx -all"\n'
        's202611._domainkey.student01.example.org. 300 IN TXT "v=DKIM1; k=rsa; " "p=MIIB"\n'
        '_dmarc.b.student01.example.org. 300 IN TXT "v=DMARC1; p=none"\n'
        "; delete s202610._domainkey.student01.example.org. TXT\n"
    )
    records = parse_zone_text(text)
    assert [(r.name, r.rtype, len(r.values)) for r in records] == [
        ("student01.example.org", "TXT", 1),
        ("s202611._domainkey.student01.example.org", "TXT", 1),
        ("_dmarc.b.student01.example.org", "TXT", 1),
        ("s202610._domainkey.student01.example.org", "TXT", 0),
    ]


def test_the_command_refuses_a_server_that_is_not_an_address(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["registrar", "rfc2136", "--server", "ns.example.net;rm", "--key-file", str(_key_file(tmp_path))]
    )
    assert result.exit_code == 2 and "is not an IP address" in result.output
