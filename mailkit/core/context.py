"""The template context: validated values plus facts read from the host.

One template can then serve Dovecot 2.3 and 2.4, or Postfix 3.7 and 3.10.

>>> dovecot_major("1:2.4.1+dfsg1-6")
'2.4'
>>> version_tuple("3.10.13-1")
(3, 10, 13)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mailkit.core.facts import DebianRelease, PackageVersion, Runner, gather


def _upstream(version: str) -> str:
    """'1:2.4.1+dfsg1-6' -> '2.4.1' (no epoch, no Debian revision, no repack suffix)."""
    version = version.split(":", 1)[-1]
    return re.split(r"[-+~]", version, maxsplit=1)[0]


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", _upstream(version)))


def dovecot_major(version: str | None) -> str | None:
    if version is None:
        return None
    major, minor, *_ = version_tuple(version)
    return f"{major}.{minor}"


@dataclass(frozen=True)
class HostFacts:
    """What templates may depend on. Versions are None when the package is not installed."""

    release: str
    postfix_version: str | None
    dovecot_version: str | None
    #: Redis, when installed: a server upgraded from bookworm keeps its Bayes store (part 4) there.
    redis_version: str | None = None

    @property
    def dovecot_major(self) -> str | None:
        return dovecot_major(self.dovecot_version)

    @property
    def postfix(self) -> tuple[int, ...] | None:
        return version_tuple(self.postfix_version) if self.postfix_version else None

    def as_context(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "postfix_version": self.postfix,
            "dovecot_major": self.dovecot_major,
        }


def host_facts(conn: Runner) -> HostFacts:
    """Read the release and the mail stack's versions in one round trip."""
    release, postfix, dovecot, redis = gather(
        conn,
        [DebianRelease(), PackageVersion("postfix"), PackageVersion("dovecot-core"), PackageVersion("redis-server")],
    )
    return HostFacts(release, postfix, dovecot, redis)
