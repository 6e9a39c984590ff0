"""The certificate fact and the renewal hook: what the notebook may claim about a server's certificate."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailkit.core.errors import MailkitError
from mailkit.core.local import run_local
from mailkit.core.result import Result
from mailkit.guide.part1 import Part1
from mailkit.guide.part2 import Part2
from mailkit.lab.ca import CertificateAuthority
from mailkit.server.certificates import CERTBOT_DEPLOY_HOOK, CertificateOnHost, certificate_status, renewal_hook

FACT = CertificateOnHost("/etc/ssl/certs/mail.example.org.pem", "/etc/ssl/private/mail.example.org.key")
GOOD = "keymode 600\nfresh yes\nname mail.example.org\nname example.org\nmatch yes\n"


class Here:
    """Runs the fact's real script on this machine (real openssl, real files): no recorded output to trust."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def run(self, argv: list[str], *, input: str | bytes | None = None, check: bool = True) -> Result:
        self.commands.append(argv)
        return run_local(argv, input=input if isinstance(input, str) else None, check=check)


def _pair(tmp_path: Path, label: str, days: int = 365) -> tuple[str, str]:
    chain, key = CertificateAuthority(tmp_path / "ca").issue("mail.example.org", days=days)
    cert_file, key_file = tmp_path / f"{label}.pem", tmp_path / f"{label}.key"
    cert_file.write_bytes(chain)
    key_file.write_bytes(key)
    key_file.chmod(0o600)
    return str(cert_file), str(key_file)


def test_the_script_reads_real_files_with_openssl(tmp_path: Path) -> None:
    cert_file, key_file = _pair(tmp_path, "good")
    here = Here()
    line = certificate_status(here, cert_file, key_file, "mail.example.org")
    assert "for mail.example.org, valid for more than 14 days" in line and "(mode 600)" in line
    assert len(here.commands) == 1, "one round trip"
    _, other_key = _pair(tmp_path, "other")
    Path(other_key).chmod(0o644)
    state = CertificateOnHost(cert_file, other_key).get(Here())
    assert state.names == ("mail.example.org",) and state.fresh and not state.key_matches and state.key_mode == 0o644
    short, _ = _pair(tmp_path, "short", days=10)
    with pytest.raises(MailkitError, match=r"renew it; .* is not the key"):
        certificate_status(Here(), short, other_key, "mail.example.org")
    with pytest.raises(MailkitError, match="does not exist on the server"):
        certificate_status(Here(), str(tmp_path / "none.pem"), key_file, "mail.example.org")


def test_a_good_certificate_has_no_problems() -> None:
    assert FACT.parse(GOOD, 0).problems("mail.example.org") == []


@pytest.mark.parametrize(
    ("seen", "problem"),
    [
        ("cert-absent\n", "/etc/ssl/certs/mail.example.org.pem does not exist"),
        ("key-absent\n", "/etc/ssl/private/mail.example.org.key does not exist"),
        (GOOD.replace("fresh yes", "fresh no"), "expires within 14 days"),
        (GOOD.replace("match yes", "match no"), "is not the key of this certificate"),
        (GOOD.replace("keymode 600", "keymode 644"), "readable by others (mode 644)"),
        (GOOD.replace("name mail.example.org\n", ""), "not for mail.example.org (it names example.org)"),
    ],
)
def test_each_problem_is_named(seen: str, problem: str) -> None:
    problems = FACT.parse(seen, 0).problems("mail.example.org")
    assert len(problems) == 1 and problem in problems[0]


def test_certbot_certificates_get_a_deploy_hook_that_reloads_both_services() -> None:
    certbot = Part2(Part1(), cert_file="/etc/letsencrypt/live/mail.example.org/fullchain.pem")
    (hook,) = certbot.renewal_hook()
    assert hook.path == CERTBOT_DEPLOY_HOOK and hook.mode == 0o755
    assert b"systemctl reload postfix dovecot" in bytes(hook.content)  # type: ignore[arg-type]
    assert Part2(Part1()).renewal_hook() == [] == renewal_hook("/etc/ssl/certs/x.pem")
