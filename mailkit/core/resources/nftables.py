"""A firewall: nftables rules that let in exactly the TCP ports the server serves, on IPv4 and IPv6, applied so the
SSH session applying them cannot be cut off.

Three things make that so, in this order:

1. The rule set is refused before anything is applied when it would close a port sshd listens on (``sshd -T``
   says which), and it is checked by ``nft -c`` (parsed and tried in the kernel, nothing loaded).
2. It is loaded in one transaction (``nft -f``: the old table and the new one swap at once, never a moment with
   half a rule set), and its first rule accepts packets of connections already open: the session applying it is
   one of them.
3. Before loading, a timer is armed that puts the old rules back in :data:`CONFIRM_SECONDS`; the change then logs
   in again over a new SSH connection, through the new rules, and only that login disarms the timer ("commit
   confirmed", as routers do it). Rules that would keep you out undo themselves.

The rules live in one table of their own (``inet filter``, as Debian's example file names it), replaced whole, so
tables other programs keep (fail2ban's bans) are left alone. ``/etc/nftables.conf`` is what Debian's
``nftables.service`` loads at boot: the rules are kept across reboots once the service is enabled.

>>> "tcp dport { 22, 25, 587 } accept" in ruleset((587, 25, 22))
True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mailkit.core.errors import CommandError, MailkitError
from mailkit.core.facts import Fact, FileInfo, FileState, ServiceIs
from mailkit.core.resources.base import Change, Resource, edit_by_hand, unified_diff
from mailkit.core.values import ValueRejected

PATH = "/etc/nftables.conf"
TABLE = "inet filter"
#: How long new rules stay without a confirming login before they undo themselves.
CONFIRM_SECONDS = 60
UNDO_UNIT = "mailkit-firewall-undo"
_UNDO_DIR = "/run/mailkit-firewall"


def port_number(value: Any, field: str = "port") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueRejected(field, value, "is not a TCP port (1-65535)")
    return value


def ruleset(ports: Iterable[int]) -> str:
    """The whole of ``/etc/nftables.conf`` for these open TCP ports."""
    wanted = sorted({port_number(p) for p in ports})
    return (
        "#!/usr/sbin/nft -f\n"
        "# Written by mailkit (the guide, part 4, section 8): only the ports this server serves are open.\n"
        "# Check a change with 'nft -c -f /etc/nftables.conf' before 'systemctl reload nftables'.\n"
        "\n"
        "# This table is replaced whole; other tables (fail2ban's) are left alone.\n"
        f"table {TABLE}\n"
        f"delete table {TABLE}\n"
        f"table {TABLE} {{\n"
        "    chain input {\n"
        "        type filter hook input priority filter; policy drop;\n"
        "        ct state established,related accept\n"
        "        ct state invalid drop\n"
        '        iif "lo" accept\n'
        "        meta l4proto { icmp, ipv6-icmp } accept\n"
        f"        tcp dport {{ {', '.join(map(str, wanted))} }} accept\n"
        "    }\n"
        "}\n"
    )


@dataclass(frozen=True)
class SshdPorts(Fact["frozenset[int] | None"]):
    """The ports sshd listens on, from its effective configuration (``sshd -T``); None when that cannot be read."""

    def command(self) -> list[str]:
        return ["sh", "-c", "sshd -T 2>/dev/null | awk '$1 == \"port\" {print $2}'"]

    def parse(self, stdout: str, exited: int) -> frozenset[int] | None:
        found = frozenset(int(w) for w in stdout.split() if w.isdigit() and 0 < int(w) < 65536)
        return found or None


# Run on the server as one script: $1 the new rules' path, $2 the undo delay in seconds.
_LOAD = f"""
set -eu
new=$1
mkdir -p -m 0700 {_UNDO_DIR}
nft list table {TABLE} > {_UNDO_DIR}/before.nft 2>/dev/null || : > {_UNDO_DIR}/before.nft
if [ -f {PATH} ]; then cp -p {PATH} {_UNDO_DIR}/before.conf; else rm -f {_UNDO_DIR}/before.conf; fi
cat > {_UNDO_DIR}/undo.sh <<'UNDO'
nft delete table {TABLE} 2>/dev/null || true
[ -s {_UNDO_DIR}/before.nft ] && nft -f {_UNDO_DIR}/before.nft
if [ -f {_UNDO_DIR}/before.conf ]; then cp -p {_UNDO_DIR}/before.conf {PATH}; else rm -f {PATH}; fi
rm -rf {_UNDO_DIR}
UNDO
systemctl stop {UNDO_UNIT}.timer 2>/dev/null || true
systemctl reset-failed {UNDO_UNIT}.service 2>/dev/null || true
systemd-run --quiet --unit={UNDO_UNIT} --on-active=$2 --timer-property=AccuracySec=1s /bin/sh {_UNDO_DIR}/undo.sh
mv -f -- "$new" {PATH}
nft -f {PATH}
"""

_CONFIRM = f"""
systemctl stop {UNDO_UNIT}.timer
systemctl enable --quiet nftables
rm -rf {_UNDO_DIR}
"""


@dataclass(frozen=True)
class Firewall(Resource):
    """Only ``ports`` open (TCP, IPv4 and IPv6), from ``/etc/nftables.conf``, loaded now and at every boot."""

    ports: tuple[int, ...]
    confirm_seconds: int = CONFIRM_SECONDS

    def __post_init__(self) -> None:
        object.__setattr__(self, "ports", tuple(sorted({port_number(p, "FIREWALL_PORTS") for p in self.ports})))
        if not self.ports:
            raise ValueRejected("FIREWALL_PORTS", self.ports, "opens nothing: not even SSH")

    @property
    def content(self) -> str:
        return ruleset(self.ports)

    def facts(self) -> list[Fact[Any]]:
        return [FileInfo(PATH, known=self.content.encode()), SshdPorts(), ServiceIs("nftables", "enabled"), Loaded()]

    def compare(self, values: list[Any]) -> Change | None:
        current: FileState = values[0]
        sshd: frozenset[int] | None = values[1]
        if sshd is None:
            raise MailkitError("cannot read which port sshd listens on ('sshd -T'): no firewall without knowing it")
        closed = sorted(sshd - set(self.ports))
        if closed:
            raise ValueRejected(
                "FIREWALL_PORTS",
                ", ".join(map(str, self.ports)),
                f"would close port {', '.join(map(str, closed))}, where sshd listens: it would lock you out",
            )
        same_file = current.content == self.content.encode()
        if same_file and values[2] and values[3]:
            return None
        diff = unified_diff(PATH, current.content, self.content.encode()) if not same_file else ""
        todo = [] if values[2] else ["enable nftables (rules kept across reboots)"]
        opened = ", ".join(map(str, self.ports))
        todo += [] if values[3] and same_file else [f"load the rules (open: {opened}), confirmed by a new SSH login"]
        typed = [edit_by_hand(PATH)] if not same_file else []
        typed += [f"nft -c -f {PATH}"] + ([] if values[2] else ["systemctl enable nftables"])
        typed += [] if values[3] and same_file else list(self.load_by_hand())
        return Change(self, f"firewall: {'; '.join(todo)}", diff, run=self._apply, by_hand=tuple(typed))

    def load_by_hand(self) -> tuple[str, ...]:
        """Loading the rules as a person would, with the same safety net: a timer that deletes them unless a new
        SSH login, through the new rules, stops it."""
        return (
            f"systemd-run --unit=firewall-undo --on-active={self.confirm_seconds} nft delete table {TABLE}",
            f"nft -f {PATH}",
            "# now log in again from another terminal; if that works, there: systemctl stop firewall-undo.timer",
        )

    def _apply(self, conn: Any, progress: Any) -> None:
        staged = f"{PATH}.mailkit-new"
        # Debian's file is a script ('#!/usr/sbin/nft -f'): 0755, as its package installs it.
        conn.run(["sh", "-c", 'umask 022 && cat > "$1" && chmod 0755 "$1"', "write", staged], input=self.content)
        checked = conn.run(["nft", "-c", "-f", staged], check=False)
        if not checked.ok:
            conn.run(["rm", "-f", "--", staged], check=False)
            raise MailkitError(f"nft refused the rules, nothing changed:\n{checked.stderr.strip()[-2000:]}")
        if progress:
            progress(f"firewall: loading, undone in {self.confirm_seconds} s unless a new SSH login gets through")
        conn.run(["sh", "-c", _LOAD, "load", staged, str(self.confirm_seconds)])
        conn.close()  # the next command logs in anew, through the new rules
        try:
            conn.run(["sh", "-c", _CONFIRM])
        except (OSError, CommandError, MailkitError) as exc:
            raise MailkitError(
                f"no new SSH login got through the new rules ({exc}); they undo themselves within "
                f"{self.confirm_seconds} s: nothing to do but wait"
            ) from None


@dataclass(frozen=True)
class Loaded(Fact[bool]):
    """Whether the rules of :data:`TABLE` are loaded now (``nft list table``)."""

    def command(self) -> list[str]:
        return ["sh", "-c", f"nft list table {TABLE} >/dev/null 2>&1"]

    def parse(self, stdout: str, exited: int) -> bool:
        return exited == 0
