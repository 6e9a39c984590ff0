"""Secrets made on the host when absent (a DKIM signing key, a password hash); they never leave the host.

Planning only looks at whether the file is there and at its owner and mode; apply makes it beside its
final path (a private key with ``openssl genpkey``), checks it, and renames it into place. Of a key only
the public half is ever read back (:class:`PublicKey`), e.g. to publish it in DNS.

>>> GeneratedKey("/etc/rspamd/dkim/example.org.key").compare([None]).summary
'generate a 2048-bit RSA key /etc/rspamd/dkim/example.org.key'

A path that is not a regular file (a symbolic link someone planted, a directory) is refused, never followed:

>>> link = ("symbolic link", 0o777, "_rspamd", "_rspamd")
>>> GeneratedKey("/etc/rspamd/dkim/a.key").compare([link])  # doctest: +ELLIPSIS
Traceback (most recent call last):
mailkit.core.errors.UsageError: /etc/rspamd/dkim/a.key is a symbolic link, not a regular file: mailkit never...
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from typing import Any

from mailkit.core.errors import UsageError
from mailkit.core.facts import Fact, PathInfo
from mailkit.core.resources.base import (
    Change,
    Resource,
    Script,
    account_name,
    file_mode,
    ownership_by_hand,
    service_names,
)
from mailkit.core.values import RemotePath, ValueRejected


@dataclass(frozen=True)
class MadeOnHost(Resource):
    """A secret file made on the host when absent (by :meth:`make`); an existing one is kept, its owner and
    mode fixed. Planning only looks at whether it is there; nothing of its content is ever read back."""

    path: str
    owner: str = "root"
    group: str = "root"
    mode: int = 0o600
    service: str | tuple[str, ...] | None = None

    #: What the plan says is made, in place of a diff.
    made = "secret made on the host"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", RemotePath(self.path))
        account_name(self.owner, "owner")
        account_name(self.group, "group")
        file_mode(self.mode)
        if self.mode & 0o007:
            raise ValueRejected("mode", oct(self.mode), "lets everyone read a secret")
        service_names(self.service)

    def make(self, out: str) -> tuple[str, str]:
        """Shell text writing the secret to the file ``out`` names, and a check of it (or "")."""
        raise NotImplementedError

    def generate_summary(self) -> str:
        return f"generate {self.path}"

    def make_by_hand(self) -> tuple[str, ...]:
        """Making it by hand on the server: :meth:`make` into the path itself, with a private umask."""
        made, check = self.make(shlex.quote(self.path))
        return (f"(umask 077 && {made})", *([check] if check else []))

    def facts(self) -> list[Fact[Any]]:
        return [PathInfo(self.path)]  # never the content

    def compare(self, values: list[Any]) -> Change | None:
        current = values[0]
        if current is not None and current[0] != "file":
            raise UsageError(
                f"{self.path} is a {current[0]}, not a regular file: mailkit never follows it "
                "(see who made it, then remove it by hand)"
            )
        if current == ("file", self.mode, self.owner, self.group):
            return None
        services = service_names(self.service)
        ownership = tuple(ownership_by_hand(self.path, self.owner, self.group, self.mode))
        if current is None:
            diff = f"+++ {self.path}\n({self.made}: never shown, never copied)\n"
            typed = (*self.make_by_hand(), *ownership)
            return Change(self, self.generate_summary(), diff, services, script=self._generate, by_hand=typed)
        summary = f"{self.path}: {current[2]}:{current[3]} {current[1]:o} -> {self.owner}:{self.group} {self.mode:o}"
        return Change(self, summary, "", services, script=self._fix, by_hand=ownership)

    def _generate(self, ref: str) -> Script:
        return self._stage(ref, *self.make(f'"${ref}"'))

    def _stage(self, ref: str, make: str, check: str) -> Script:
        """Fragments that run ``make`` into a private candidate beside the path, own it, check it, rename it."""
        q, path = shlex.quote, shlex.quote(self.path)
        stage = (
            f'(umask 022 && mkdir -p -- "$(dirname -- {path})")\n{ref}=$(candidate {path})\n{make}\n'
            f'[ -s "${ref}" ] || {{ echo "nothing was generated for {self.path}" >&2; exit 1; }}\n'
            f'own "${ref}" {q(self.owner)} {q(self.group)} {self.mode:o}\n'
        )
        check = f"check {path} {check}\n" if check else ""
        return Script(backup=(self.path,), stage=stage, check=check, commit=f'mv -f -- "${ref}" {path}\n')

    def _fix(self, ref: str) -> Script:
        q, path = shlex.quote, shlex.quote(self.path)
        return Script(backup=(self.path,), commit=f"own {path} {q(self.owner)} {q(self.group)} {self.mode:o}\n")


@dataclass(frozen=True)
class GeneratedKey(MadeOnHost):
    """An RSA private key (a DKIM signing key) made with ``openssl genpkey``, checked with ``openssl pkey``.

    ``adopt`` names where an older layout kept the same key: if a regular file is there, it is copied (read
    with ``O_NOFOLLOW``, so a link planted there is refused) instead of making a new key, and the public key
    already published in DNS stays right.

    >>> key = GeneratedKey("/etc/rspamd/dkim/a.key", adopt="/var/lib/rspamd/dkim/a.key")
    >>> key.compare([None, ("file", 0o600, "_rspamd", "_rspamd")]).summary
    'copy the key /var/lib/rspamd/dkim/a.key to /etc/rspamd/dkim/a.key (its DNS record stays right)'
    >>> key.compare([None, None]).summary
    'generate a 2048-bit RSA key /etc/rspamd/dkim/a.key'
    """

    bits: int = 2048
    adopt: str | None = None
    made = "private key made on the host"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bits not in (2048, 3072, 4096):
            raise ValueRejected("bits", self.bits, "must be 2048, 3072 or 4096")
        if self.adopt is not None:
            object.__setattr__(self, "adopt", RemotePath(self.adopt))

    def facts(self) -> list[Fact[Any]]:
        return [PathInfo(self.path), *([PathInfo(self.adopt)] if self.adopt else [])]

    def compare(self, values: list[Any]) -> Change | None:
        change = super().compare(values[:1])
        older = values[1] if len(values) > 1 else None
        if change is None or values[0] is not None or older is None or older[0] != "file":
            return change
        summary = f"copy the key {self.adopt} to {self.path} (its DNS record stays right)"
        path = shlex.quote(self.path)
        typed = (
            f"(umask 077 && {self._copy_command(path)})",
            *ownership_by_hand(self.path, self.owner, self.group, self.mode),
            f"openssl pkey -in {path} -check -noout",
        )
        return dataclasses.replace(change, summary=summary, script=self._copy, by_hand=typed)

    def _copy_command(self, out: str) -> str:
        return f"dd if={shlex.quote(str(self.adopt))} of={out} iflag=nofollow status=none"

    def _copy(self, ref: str) -> Script:
        out = f'"${ref}"'
        return self._stage(ref, self._copy_command(out), f"openssl pkey -in {out} -check -noout")

    def generate_summary(self) -> str:
        return f"generate a {self.bits}-bit RSA key {self.path}"

    def make(self, out: str) -> tuple[str, str]:
        return (
            f"openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:{self.bits} -out {out}",
            f"openssl pkey -in {out} -check -noout",
        )


@dataclass(frozen=True)
class GeneratedSecret(MadeOnHost):
    """A file made by ``recipe``, mailkit's own shell text (never user input) writing the file named by
    ``$out``, e.g. a password hash made from random bytes.

    >>> secret = GeneratedSecret("/etc/x/pw", recipe="openssl rand -hex 16 > \\"$out\\"", what="a password")
    >>> secret.compare([None]).summary
    'generate /etc/x/pw (a password)'
    """

    recipe: str = ""
    what: str = "a secret"
    #: How a person makes it by hand, when the recipe is not what one types (it answers a prompt by itself, say);
    #: by default the recipe, writing to the path.
    typed: tuple[str, ...] = ()

    def generate_summary(self) -> str:
        return f"generate {self.path} ({self.what})"

    def make_by_hand(self) -> tuple[str, ...]:
        """
        >>> GeneratedSecret("/etc/x/pw", recipe='openssl rand -hex 16 > "$out"').make_by_hand()
        ('(umask 077 && openssl rand -hex 16 > /etc/x/pw)',)
        """
        if self.typed:
            return self.typed
        return (f"(umask 077 && {self.recipe.replace(chr(34) + '$out' + chr(34), shlex.quote(self.path))})",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.recipe:
            raise ValueRejected("recipe", self.recipe, "is empty")

    def make(self, out: str) -> tuple[str, str]:
        return f"out={out}\n{self.recipe}", ""


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
