"""The server's certificate as it is on the host (a fact), and the hook that reloads the mail services on renewal.

Part 2 installs the lab CA's certificate itself; on a real server the reader brings one (certbot, another ACME
client). Either way the notebook states what it *checked* on the host, not what it assumes.

>>> seen = "keymode 600\\nfresh yes\\nname mail.example.org\\nmatch yes\\n"
>>> state = CertificateOnHost("/c.pem", "/k.key").parse(seen, 0)
>>> state.problems("mail.example.org")
[]
>>> state.problems("mx.example.org")
['it is not for mx.example.org (it names mail.example.org)']
"""

from __future__ import annotations

from dataclasses import dataclass

from mailkit.core.errors import MailkitError
from mailkit.core.facts import Fact, Runner
from mailkit.core.resources import File, Resource

#: A certificate with this many days left or fewer is a problem: the renewal did not happen. The one rule for every
#: check of a certificate (part 2's, ``mailkit check``'s from outside and on the host).
MIN_DAYS_LEFT = 14
FRESH_SECONDS = MIN_DAYS_LEFT * 86400


def default_paths(hostname: str) -> tuple[str, str]:
    """Where a certificate that did not come from certbot lives on the server: Debian's places for them.

    >>> default_paths("mail.example.org")
    ('/etc/ssl/certs/mail.example.org.pem', '/etc/ssl/private/mail.example.org.key')
    """
    return f"/etc/ssl/certs/{hostname}.pem", f"/etc/ssl/private/{hostname}.key"


def fresh(days_left: float) -> bool:
    """A certificate is fresh with more than :data:`MIN_DAYS_LEFT` days left (``openssl x509 -checkend``'s rule).

    >>> fresh(14.5), fresh(14), fresh(-1)
    (True, False, False)
    """
    return days_left > MIN_DAYS_LEFT


#: certbot runs every executable in this directory after each successful renewal.
CERTBOT_DEPLOY_HOOK = "/etc/letsencrypt/renewal-hooks/deploy/mailkit-reload-mail"
CERTBOT_LIVE = "/etc/letsencrypt/live/"

_SCRIPT = f"""
c=$1; k=$2
[ -f "$c" ] || {{ echo cert-absent; exit 0; }}
[ -f "$k" ] || {{ echo key-absent; exit 0; }}
echo "keymode $(stat -L -c %a -- "$k")"
if openssl x509 -in "$c" -noout -checkend {FRESH_SECONDS} >/dev/null; then echo 'fresh yes'; else echo 'fresh no'; fi
openssl x509 -in "$c" -noout -ext subjectAltName 2>/dev/null | tr ',' '\\n' | sed -n 's/.*DNS:/name /p'
a=$(openssl x509 -in "$c" -noout -pubkey | sha256sum); b=$(openssl pkey -in "$k" -pubout 2>/dev/null | sha256sum)
if [ "$a" = "$b" ]; then echo 'match yes'; else echo 'match no'; fi
"""


@dataclass(frozen=True)
class CertificateState:
    """What the host's certificate and key files say; ``absent`` names a missing file."""

    cert_file: str
    key_file: str
    absent: str = ""
    key_mode: int | None = None
    fresh: bool = False
    names: tuple[str, ...] = ()
    key_matches: bool = False

    def problems(self, hostname: str) -> list[str]:
        if self.absent:
            return [f"{self.absent} does not exist on the server"]
        found = []
        if hostname not in self.names:
            found.append(f"it is not for {hostname} (it names {', '.join(self.names) or 'no host name'})")
        if not self.fresh:
            found.append(f"it expires within {MIN_DAYS_LEFT} days, or has expired: renew it")
        if not self.key_matches:
            found.append(f"{self.key_file} is not the key of this certificate")
        if self.key_mode is not None and self.key_mode & 0o077:
            found.append(f"{self.key_file} is readable by others (mode {self.key_mode:o}): chmod 600")
        return found


@dataclass(frozen=True)
class CertificateOnHost(Fact[CertificateState]):
    """The certificate and key files on the host: names, freshness, key match and key mode (never the key)."""

    cert_file: str
    key_file: str

    def command(self) -> list[str]:
        return ["sh", "-c", _SCRIPT, "sh", self.cert_file, self.key_file]

    def parse(self, stdout: str, exited: int) -> CertificateState:
        if exited != 0:
            raise MailkitError(f"cannot read the certificate {self.cert_file}: exit {exited}")
        words = [line.split(" ", 1) for line in stdout.splitlines() if line.strip()]
        if words and words[0][0] in ("cert-absent", "key-absent"):
            absent = self.cert_file if words[0][0] == "cert-absent" else self.key_file
            return CertificateState(self.cert_file, self.key_file, absent=absent)
        seen = {w[0]: (w[1] if len(w) > 1 else "") for w in words if w[0] != "name"}
        return CertificateState(
            self.cert_file,
            self.key_file,
            key_mode=int(seen["keymode"], 8) if seen.get("keymode", "").isdigit() else None,
            fresh=seen.get("fresh") == "yes",
            names=tuple(w[1].strip() for w in words if w[0] == "name" and len(w) > 1),
            key_matches=seen.get("match") == "yes",
        )


def certificate_status(conn: Runner, cert_file: str, key_file: str, hostname: str) -> str:
    """One line on the certificate the server has, checked there; an error naming every problem otherwise."""
    state = CertificateOnHost(cert_file, key_file).get(conn)
    problems = state.problems(hostname)
    if problems:
        raise MailkitError(f"the certificate {cert_file}: " + "; ".join(problems))
    return (
        f"certificate {cert_file}: for {hostname}, valid for more than {MIN_DAYS_LEFT} days, "
        f"and its key {key_file} matches it (mode {state.key_mode:o})"
    )


def renewal_hook(cert_file: str) -> list[Resource]:
    """certbot's deploy hook that reloads Postfix and Dovecot after a renewal; nothing for other certificates.

    >>> [r.path for r in renewal_hook("/etc/letsencrypt/live/mail.example.org/fullchain.pem")]
    ['/etc/letsencrypt/renewal-hooks/deploy/mailkit-reload-mail']
    >>> renewal_hook("/etc/ssl/certs/mail.example.org.pem")
    []
    """
    if not cert_file.startswith(CERTBOT_LIVE):
        return []
    script = "#!/bin/sh\n# Written by mailkit (guide part 2): the mail services read the renewed certificate.\n"
    script += "systemctl reload postfix dovecot\n"
    return [File(CERTBOT_DEPLOY_HOOK, script.encode(), mode=0o755)]
