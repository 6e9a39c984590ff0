"""A private key generated on the host when absent (a DKIM signing key); it never leaves the host.

Planning only looks at whether the key is there and at its owner and mode; apply makes it with
``openssl genpkey`` beside its final path, checks it, and renames it into place. Only the public half
is ever read back (:class:`PublicKey`), e.g. to publish it in DNS.

>>> GeneratedKey("/var/lib/rspamd/dkim/example.org.key").compare([None]).summary
'generate a 2048-bit RSA key /var/lib/rspamd/dkim/example.org.key'
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from mailkit.facts import Fact, PathInfo
from mailkit.resources.base import Change, Resource, Script, account_name, file_mode, service_names
from mailkit.values import RemotePath, ValueRejected


@dataclass(frozen=True)
class GeneratedKey(Resource):
    """An RSA private key made on the host if missing; an existing key is kept (owner and mode fixed)."""

    path: str
    bits: int = 2048
    owner: str = "root"
    group: str = "root"
    mode: int = 0o600
    service: str | tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", RemotePath(self.path))
        if self.bits not in (2048, 3072, 4096):
            raise ValueRejected("bits", self.bits, "must be 2048, 3072 or 4096")
        account_name(self.owner, "owner")
        account_name(self.group, "group")
        file_mode(self.mode)
        if self.mode & 0o007:
            raise ValueRejected("mode", oct(self.mode), "lets everyone read a private key")
        service_names(self.service)

    def facts(self) -> list[Fact[Any]]:
        return [PathInfo(self.path)]  # never the content

    def compare(self, values: list[Any]) -> Change | None:
        current = values[0]
        wanted = ("file", self.mode, self.owner, self.group)
        if current == wanted:
            return None
        services = service_names(self.service)
        if current is None:
            summary = f"generate a {self.bits}-bit RSA key {self.path}"
            diff = f"+++ {self.path}\n(private key made on the host: never shown, never copied)\n"
            return Change(self, summary, diff, services, script=self._generate)
        summary = f"{self.path}: {current[2]}:{current[3]} {current[1]:o} -> {self.owner}:{self.group} {self.mode:o}"
        return Change(self, summary, "", services, script=self._fix)

    def _generate(self, ref: str) -> Script:
        q, path = shlex.quote, shlex.quote(self.path)
        stage = (
            f'(umask 022 && mkdir -p -- "$(dirname -- {path})")\n{ref}=$(candidate {path})\n'
            f'openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:{self.bits} -out "${ref}"\n'
            f'own "${ref}" {q(self.owner)} {q(self.group)} {self.mode:o}\n'
        )
        check = f'check {path} openssl pkey -in "${ref}" -check -noout\n'
        return Script(backup=(self.path,), stage=stage, check=check, commit=f'mv -f -- "${ref}" {path}\n')

    def _fix(self, ref: str) -> Script:
        q, path = shlex.quote, shlex.quote(self.path)
        return Script(backup=(self.path,), commit=f"own {path} {q(self.owner)} {q(self.group)} {self.mode:o}\n")


@dataclass(frozen=True)
class PublicKey(Fact["str | None"]):
    """The public half of a private key on the host, base64 DER (as DKIM's ``p=`` wants it); None if absent.

    >>> PublicKey("/k").parse("-----BEGIN PUBLIC KEY-----\\nMIIB\\nIjAN\\n-----END PUBLIC KEY-----\\n", 0)
    'MIIBIjAN'
    """

    path: str

    def command(self) -> list[str]:
        return ["openssl", "pkey", "-in", self.path, "-pubout"]

    def parse(self, stdout: str, exited: int) -> str | None:
        if exited != 0:
            return None
        return "".join(line for line in stdout.splitlines() if line and not line.startswith("-----"))


@dataclass(frozen=True)
class GeneratedSecret(Resource):
    """A file holding a secret made on the host by ``recipe`` when the file is absent; an existing one is kept.

    ``recipe`` is mailkit's own shell text (never user input) that writes the file named by ``$out``,
    e.g. a password hash made from random bytes. Nothing of the secret is ever read back.

    >>> secret = GeneratedSecret("/etc/x/pw", "openssl rand -hex 16 > \\"$out\\"", "a random password")
    >>> secret.compare([None]).summary
    'generate /etc/x/pw (a random password)'
    """

    path: str
    recipe: str
    description: str
    owner: str = "root"
    group: str = "root"
    mode: int = 0o600
    service: str | tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", RemotePath(self.path))
        account_name(self.owner, "owner")
        account_name(self.group, "group")
        file_mode(self.mode)
        if self.mode & 0o007:
            raise ValueRejected("mode", oct(self.mode), "lets everyone read a secret")
        service_names(self.service)

    def facts(self) -> list[Fact[Any]]:
        return [PathInfo(self.path)]  # never the content

    def compare(self, values: list[Any]) -> Change | None:
        current = values[0]
        if current == ("file", self.mode, self.owner, self.group):
            return None
        services = service_names(self.service)
        if current is None:
            diff = f"+++ {self.path}\n(secret made on the host: never shown, never copied)\n"
            return Change(self, f"generate {self.path} ({self.description})", diff, services, script=self._generate)
        summary = f"{self.path}: {current[2]}:{current[3]} {current[1]:o} -> {self.owner}:{self.group} {self.mode:o}"
        return Change(self, summary, "", services, script=self._fix)

    def _generate(self, ref: str) -> Script:
        q, path = shlex.quote, shlex.quote(self.path)
        stage = (
            f'(umask 022 && mkdir -p -- "$(dirname -- {path})")\n{ref}=$(candidate {path})\n'
            f'out="${ref}"\n{self.recipe}\n'
            f'[ -s "${ref}" ] || {{ echo "nothing was generated for {self.path}" >&2; exit 1; }}\n'
            f'own "${ref}" {q(self.owner)} {q(self.group)} {self.mode:o}\n'
        )
        return Script(backup=(self.path,), stage=stage, commit=f'mv -f -- "${ref}" {path}\n')

    def _fix(self, ref: str) -> Script:
        q, path = shlex.quote, shlex.quote(self.path)
        return Script(backup=(self.path,), commit=f"own {path} {q(self.owner)} {q(self.group)} {self.mode:o}\n")
