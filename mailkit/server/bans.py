"""What fail2ban says of its jails (part 4, section 9), read with ``fail2ban-client`` and parsed as hostile text:
bounded, and every banned address validated as one before it is shown.

>>> jail_list("Status\\n|- Number of jail:\\t2\\n`- Jail list:\\tdovecot, postfix-sasl\\n")
('dovecot', 'postfix-sasl')
>>> jail_list("ERROR   Failed to access socket path: /run/fail2ban/fail2ban.sock. Is fail2ban running?") is None
True
>>> JailStatus.parse(SAMPLE).banned, JailStatus.parse(SAMPLE).failed_total
(('198.51.100.69',), 7)
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from mailkit.core.errors import MailkitError
from mailkit.core.ssh import Connection
from mailkit.core.text import shorten

#: The most of fail2ban-client's answer that is read (a jail with thousands of bans prints long lines).
MAX_CHARS = 256 * 1024
#: How long fail2ban-client may take to answer before the check says it does not.
TIMEOUT = 30

SAMPLE = """Status for the jail: dovecot
|- Filter
|  |- Currently failed:\t0
|  |- Total failed:\t7
|  `- Journal matches:\t_SYSTEMD_UNIT=dovecot.service
`- Actions
   |- Currently banned:\t1
   |- Total banned:\t1
   `- Banned IP list:\t198.51.100.69
"""


def _field(text: str, name: str) -> str | None:
    found = re.search(rf"^[|`\- ]*{re.escape(name)}:[ \t]*(.*)$", text, re.MULTILINE)
    return found[1].strip() if found else None


def jail_list(text: str) -> tuple[str, ...] | None:
    """The jails ``fail2ban-client status`` lists, or None when the text is not its answer."""
    value = _field(text[:MAX_CHARS], "Jail list")
    if value is None:
        return None
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    return names if all(re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", n) for n in names) else None


@dataclass(frozen=True)
class JailStatus:
    """One jail's counters and the addresses it bans now (as ``fail2ban-client status JAIL`` prints them)."""

    failed_now: int
    failed_total: int
    banned_now: int
    banned_total: int
    banned: tuple[str, ...] = field(default=())

    @classmethod
    def parse(cls, text: str) -> JailStatus | None:
        """The status, or None when the text is not one (an error, garbage, a field missing)."""
        text = text[:MAX_CHARS]
        names = ("Currently failed", "Total failed", "Currently banned", "Total banned")
        numbers = [_field(text, name) for name in names]
        if not all(n is not None and n.isdigit() for n in numbers):
            return None
        listed = (_field(text, "Banned IP list") or "").split()
        try:
            banned = tuple(str(ipaddress.ip_address(a)) for a in listed)
        except ValueError:
            return None
        failed_now, failed_total, banned_now, banned_total = (int(n or 0) for n in numbers)
        return cls(failed_now, failed_total, banned_now, banned_total, banned)


@dataclass(frozen=True)
class Bans:
    """fail2ban as read from the server: its jails, each jail's status, or why it could not be read."""

    jails: tuple[str, ...] = ()
    status: dict[str, JailStatus | None] = field(default_factory=dict)
    error: str = ""

    @property
    def banned(self) -> dict[str, tuple[str, ...]]:
        """Each banned address with the jails that ban it, in the order seen."""
        found: dict[str, tuple[str, ...]] = {}
        for jail, status in self.status.items():
            for address in status.banned if status else ():
                found[address] = (*found.get(address, ()), jail)
        return found


def read_bans(conn: Connection, jails: Sequence[str]) -> Bans:
    """Ask fail2ban on the server for its jails and the status of ``jails``. Reads only; an answer it cannot read
    (no fail2ban, a stopped one, garbage, too long or too slow) is not raised: the error says what was seen."""
    try:
        listing = conn.run(["fail2ban-client", "status"], check=False, timeout=TIMEOUT, max_output=MAX_CHARS)
        found = jail_list(listing.stdout) if listing.ok else None
        if found is None:
            said = shorten(listing.stderr or listing.stdout, 200) or f"exit {listing.exited}"
            return Bans(error=f"fail2ban-client status: {said}")
        status = {}
        for jail in (j for j in jails if j in found):
            answer = conn.run(["fail2ban-client", "status", jail], check=False, timeout=TIMEOUT, max_output=MAX_CHARS)
            status[jail] = JailStatus.parse(answer.stdout) if answer.ok else None
    except MailkitError as exc:
        return Bans(error=f"fail2ban-client: {shorten(str(exc), 200)}")
    return Bans(found, status)


def wait_for_ban(conn: Connection, jails: Sequence[str], address: str, seconds: float = 30) -> float | None:
    """Seconds until one of ``jails`` bans ``address`` (fail2ban reads the journal as it is written), or None
    when it does not within ``seconds``."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if address in read_bans(conn, jails).banned:
            return time.monotonic() - start
        time.sleep(0.25)
    return None
