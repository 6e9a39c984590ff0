"""A certificate from an ACME CA (Let's Encrypt, or the lab's pebble), got by certbot on the server itself.

certbot proves control of the name with the HTTP-01 challenge: the CA fetches a token from
``http://<name>/.well-known/acme-challenge/`` and certbot answers it with a web server of its own that runs only
for those seconds (``--standalone``). Nothing else listens on port 80, and no DNS credentials sit on the server
(DNS-01 would need the DNS provider's API key there). The key is made on the server and never leaves it.

Planning reads the certbot lineage (its renewal file and the certificate's names); it is "no change" when one
exists from the same CA for the name. certbot's timer renews it; the guide's deploy hook reloads the mail services.

>>> acme_url("https://acme-v02.api.letsencrypt.org/directory")
'https://acme-v02.api.letsencrypt.org/directory'
>>> AcmeLineage("mail.example.org").parse("server = https://ca.example.net/dir\\nname mail.example.org\\n", 0)
('https://ca.example.net/dir', ('mail.example.org',))
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

from mailkit.core.errors import CommandError, MailkitError
from mailkit.core.facts import Fact
from mailkit.core.resources.base import Change, Resource
from mailkit.core.values import EmailAddress, Hostname, ValueRejected

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LIVE = "/etc/letsencrypt/live"
_URL = re.compile(r"https://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/-]*)?")

_LINEAGE = """
n=$1
[ -f "/etc/letsencrypt/renewal/$n.conf" ] || { echo absent; exit 0; }
sed -n 's/^server *= */server = /p' "/etc/letsencrypt/renewal/$n.conf"
openssl x509 -in "/etc/letsencrypt/live/$n/fullchain.pem" -noout -ext subjectAltName 2>/dev/null \\
    | tr ',' '\\n' | sed -n 's/.*DNS:/name /p'
"""


def acme_url(value: Any, field: str = "ACME_SERVER") -> str:
    """An ACME directory URL: https, a host name, a plain path (it goes on certbot's command line)."""
    if not isinstance(value, str) or not _URL.fullmatch(value):
        raise ValueRejected(field, value, "is not an https:// URL of an ACME directory")
    return value


def live_paths(hostname: str) -> tuple[str, str]:
    """Where certbot keeps the newest certificate chain and key for ``hostname``."""
    return f"{LIVE}/{hostname}/fullchain.pem", f"{LIVE}/{hostname}/privkey.pem"


@dataclass(frozen=True)
class AcmeLineage(Fact["tuple[str, tuple[str, ...]] | None"]):
    """certbot's lineage for ``name``: the CA it renews from and the names its certificate covers; None if absent."""

    name: str

    def command(self) -> list[str]:
        return ["sh", "-c", _LINEAGE, "sh", self.name]

    def parse(self, stdout: str, exited: int) -> tuple[str, tuple[str, ...]] | None:
        lines = stdout.splitlines()
        if exited != 0 or not lines or lines[0] == "absent":
            return None
        server = next((line.split(" = ", 1)[1] for line in lines if line.startswith("server = ")), "")
        names = tuple(line[5:] for line in lines if line.startswith("name "))
        return server, names


@dataclass(frozen=True)
class AcmeCertificate(Resource):
    """A certificate for ``hostname`` from the ACME CA at ``server``, by certbot's HTTP-01 standalone challenge."""

    hostname: str
    server: str = LETS_ENCRYPT
    email: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "hostname", Hostname(self.hostname, field="HOSTNAME"))
        acme_url(self.server)
        if self.email is not None:
            object.__setattr__(self, "email", EmailAddress(self.email, field="ACME_EMAIL"))

    def facts(self) -> list[Fact[Any]]:
        return [AcmeLineage(self.hostname)]

    def argv(self) -> list[str]:
        """certbot's command line, as you would type it (every value validated above)."""
        contact = ["--email", str(self.email)] if self.email else ["--register-unsafely-without-email"]
        # --reuse-key: a renewal keeps the key, so the TLSA records that name it (part 3 section 13) stay right.
        return ["certbot", "certonly", "--standalone", "--non-interactive", "--agree-tos", "--reuse-key", *contact,
                "--server", self.server, "--cert-name", self.hostname, "-d", self.hostname]  # fmt: skip

    def compare(self, values: list[Any]) -> Change | None:
        current = values[0]
        if current is not None and current[0] == self.server and self.hostname in current[1]:
            return None
        cert, key = live_paths(self.hostname)
        was = f"-certificate from {current[0]} for {', '.join(current[1]) or 'no name'}\n" if current else ""
        diff = f"{was}+{cert} and {key}: from {self.server}, HTTP-01 on port 80 (the key is made on the server)\n"

        def run(conn: Any, progress: Any) -> None:
            if progress:
                progress(f"certbot: asking {self.server} for {self.hostname}")
            try:
                conn.run(self.argv(), timeout=300)
            except CommandError as exc:
                said = "\n".join((exc.result.stdout + exc.result.stderr).strip().splitlines()[-8:])
                raise MailkitError(f"certbot got no certificate for {self.hostname}:\n{said}") from None

        summary = f"certbot: a certificate for {self.hostname} from {self.server}"
        return Change(self, summary, diff, run=run, by_hand=(shlex.join(self.argv()),))
