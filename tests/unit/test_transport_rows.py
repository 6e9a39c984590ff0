"""`mailkit check`'s transport rows from internet.nl's mail test (issue 24, item 5): TLS 1.0 and 1.1 refused on every
TLS port, the insufficient ciphers, Diffie-Hellman groups under 2048 bits, and port 25's greeting naming the server.
The probe's handshakes are tried here against servers on loopback that accept or refuse them; the rows from what a
probe saw."""

from __future__ import annotations

import ssl
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailkit.remote import probe
from mailkit.status.outside import greeting_rows, outside_rows, refusal_rows
from tests.loopback import serve


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=mail.example.org"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _tls_server(certificate: tuple[Path, Path], oldest: ssl.TLSVersion, ciphers: str | None) -> Iterator[int]:
    """TLS on connect on loopback, accepting versions from ``oldest`` on and ``ciphers`` (None: Python's defaults);
    each connection handshakes and closes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = oldest
    if ciphers:
        context.set_ciphers(ciphers)
    context.load_cert_chain(*certificate)
    yield from serve(lambda sock: None, wrap=context)


@pytest.fixture
def old_server(certificate: tuple[Path, Path]) -> Iterator[int]:
    yield from _tls_server(certificate, ssl.TLSVersion.TLSv1, "ALL:@SECLEVEL=0")


@pytest.fixture
def modern_server(certificate: tuple[Path, Path]) -> Iterator[int]:
    yield from _tls_server(certificate, ssl.TLSVersion.TLSv1_2, None)


@pytest.fixture
def rsa_certificate(tmp_path: Path) -> tuple[Path, Path]:
    """An RSA certificate: DHE's cipher suites authenticate with RSA."""
    cert, key = tmp_path / "rsa-cert.pem", tmp_path / "rsa-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=mail.example.org"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _dhe_server(certificate: tuple[Path, Path], params: Path) -> Iterator[int]:
    """TLS 1.2 on connect, DHE with the group in ``params`` (at security level 0: the server agrees to any size)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers("kDHE:!aNULL:@SECLEVEL=0")
    context.load_dh_params(str(params))
    context.load_cert_chain(*certificate)
    yield from serve(lambda sock: None, wrap=context)


@pytest.fixture
def dh1024_server(rsa_certificate: tuple[Path, Path], tmp_path: Path) -> Iterator[int]:
    """What an old how-to leaves: a DH parameter file of 1024 bits ('smtpd_tls_dh1024_param_file')."""
    params = tmp_path / "dh1024.pem"
    subprocess.run(["openssl", "dhparam", "-out", str(params), "1024"], check=True, capture_output=True)
    yield from _dhe_server(rsa_certificate, params)


@pytest.fixture
def ffdhe2048_server(rsa_certificate: tuple[Path, Path], tmp_path: Path) -> Iterator[int]:
    params = tmp_path / "ffdhe2048.pem"
    subprocess.run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048",
                    "-out", str(params)], check=True, capture_output=True)  # fmt: skip
    yield from _dhe_server(rsa_certificate, params)


@pytest.fixture(autouse=True)
def request_for_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe, "req", {"hostname": "mail.example.org", "helo": "outside.example.net",
                                       "connection_bytes": 65536, "reply_lines": 50})  # fmt: skip


def _rows(seen: dict[str, str], port: int) -> dict[str, Any]:
    rows = refusal_rows({str(port): {"refused": seen}}, [port], "127.0.0.1")
    return {r.name.split(" refused")[0].split(" under")[0]: r for r in rows}


def test_a_server_that_still_speaks_tls_1_0_and_1_1_and_weak_ciphers_is_seen_accepting_them(old_server: int) -> None:
    seen = probe.refused_offers("127.0.0.1", old_server, "imap-tls")
    assert seen["TLSv1"].startswith("ACCEPTED: TLSv1 ") and seen["TLSv1_1"].startswith("ACCEPTED: TLSv1.1 "), seen
    assert seen["insufficient_ciphers"].startswith("ACCEPTED: TLSv1.2 "), seen
    rows = _rows(seen, 993)
    assert not rows["TLS 1.0 and 1.1"].ok and rows["TLS 1.0 and 1.1"].detail == "TLS 1.0 ACCEPTED, TLS 1.1 ACCEPTED"
    weak = rows["insufficient ciphers"]
    assert not weak.ok and weak.detail.startswith("ACCEPTED: TLSv1.2 ") and weak.part == 2


def test_a_server_that_refuses_them_is_seen_refusing_each(modern_server: int) -> None:
    seen = probe.refused_offers("127.0.0.1", modern_server, "smtp-tls")
    assert set(seen) == {"TLSv1", "TLSv1_1", "insufficient_ciphers", "dhe"}
    assert all(v.startswith("refused") for v in seen.values()), seen  # an EC certificate: no DHE at all
    rows = _rows(seen, 465)
    assert rows["TLS 1.0 and 1.1"].ok and rows["TLS 1.0 and 1.1"].detail == "TLS 1.0 refused, TLS 1.1 refused"
    assert rows["TLS 1.0 and 1.1"].name == "TLS 1.0 and 1.1 refused on 465 (127.0.0.1)"
    assert rows["insufficient ciphers"].ok and rows["insufficient ciphers"].detail.startswith("none accepted")
    assert rows["no Diffie-Hellman group"].ok and rows["no Diffie-Hellman group"].detail == "no DHE offered: ECDHE only"


def test_a_server_with_a_1024_bit_dh_group_is_seen_offering_it(dh1024_server: int) -> None:
    seen = probe.refused_offers("127.0.0.1", dh1024_server, "smtp-tls")
    assert seen["dhe"] == "refused: DH_KEY_TOO_SMALL", seen
    row = _rows(seen, 465)["no Diffie-Hellman group"]
    assert not row.ok and row.name == "no Diffie-Hellman group under 2048 bits on 465 (127.0.0.1)"
    assert row.detail == "DHE with a group under 2048 bits (the client said DH_KEY_TOO_SMALL)" and row.part == 2


def test_a_server_with_a_2048_bit_dh_group_is_seen_offering_it_and_passes(ffdhe2048_server: int) -> None:
    seen = probe.refused_offers("127.0.0.1", ffdhe2048_server, "smtp-tls")
    assert seen["dhe"].startswith("ACCEPTED: TLSv1.2 DHE-RSA-"), seen
    row = _rows(seen, 465)["no Diffie-Hellman group"]
    assert row.ok and row.detail.startswith("DHE with a group of 2048 bits or more (DHE-RSA-"), row.detail


def test_a_client_that_cannot_offer_them_never_makes_the_rows_green(
    modern_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(probe, "offer_context", lambda version, ciphers: None)
    seen = probe.refused_offers("127.0.0.1", modern_server, "smtp-tls")
    rows = _rows(seen, 465)
    assert not any(r.ok for r in rows.values()) and all("untestable" in r.detail for r in rows.values())


def test_starttls_is_asked_for_the_way_each_protocol_does_and_a_refusal_is_an_error() -> None:
    class Replies:
        def __init__(self, *lines: bytes) -> None:
            self.lines = list(lines)

        def readline(self) -> bytes:
            return self.lines.pop(0) if self.lines else b""

    class Sent:
        def __init__(self) -> None:
            self.data = b""

        def sendall(self, data: bytes) -> None:
            self.data += data

    sock = Sent()
    probe.plain_starttls(
        "smtp", Replies(b"220 mail ESMTP\r\n", b"250-mail\r\n", b"250 STARTTLS\r\n", b"220 go\r\n"), sock
    )  # type: ignore[arg-type]
    assert sock.data == b"EHLO outside.example.net\r\nSTARTTLS\r\n"
    sock = Sent()
    probe.plain_starttls("imap", Replies(b"* OK ready\r\n", b"a OK Begin TLS\r\n"), sock)  # type: ignore[arg-type]
    assert sock.data == b"a STARTTLS\r\n"
    with pytest.raises(OSError, match="STARTTLS refused: 454"):
        probe.plain_starttls("smtp", Replies(b"220 x\r\n", b"250 x\r\n", b"454 4.7.0 TLS not available\r\n"), Sent())  # type: ignore[arg-type]
    with pytest.raises(OSError, match="closed"):
        probe.plain_starttls("sieve", Replies(), Sent())  # type: ignore[arg-type]


def test_the_greeting_must_name_the_server_and_a_hostile_one_is_shown_flat_and_cut() -> None:
    [ok] = greeting_rows({"25": {"greeting": "mail.example.org ESMTP Postfix (Debian/GNU)"}}, "mail.example.org")
    assert ok.ok and ok.part == 3
    [other] = greeting_rows({"25": {"greeting": "localhost ESMTP"}}, "mail.example.org")
    assert not other.ok and other.detail == "localhost ESMTP (names localhost, not mail.example.org)"
    hostile = "mail.example.org\x1b[31m " + "A" * 5000
    [cut] = greeting_rows({"25": {"greeting": hostile}}, "mail.example.org")
    assert "\x1b" not in cut.detail and len(cut.detail) < 400 and cut.detail.endswith("...")
    assert greeting_rows({}, "mail.example.org") == []  # port 25 not reached: its own rows say so


def test_the_rows_come_with_the_other_outside_rows() -> None:
    seen = {
        "ports": {"198.51.100.25": {"25": "open"}},
        "tls": {"25": {"greeting": "mail.example.org ESMTP",
                       "refused": {"TLSv1": "refused", "TLSv1_1": "refused", "insufficient_ciphers": "refused: x"},
                       "tls": {"version": "TLSv1.3", "days_left": 80}, "starttls_offered": True,
                       "auth_before_tls": False}},
    }  # fmt: skip
    names = {r.name: r.ok for r in outside_rows(seen, [25], "mail.example.org", "example.org")}
    assert names["TLS 1.0 and 1.1 refused on 25 (198.51.100.25)"] is True
    assert names["SMTP greeting names the server (as its PTR does)"] is True
    assert names["insufficient ciphers refused on 25 (198.51.100.25)"] is True
