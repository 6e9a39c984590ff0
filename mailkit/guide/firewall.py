"""Part 4, section 8: a firewall that lets in exactly what the server serves.

The ports come from the guide's registry of what each part serves (:data:`mailkit.guide.chapters.PORTS`), plus
SSH, plus port 80 when certbot needs it for its HTTP-01 challenge (part 2 with an ACME CA): one source of truth,
so a part that starts serving a port opens it here too. The rules themselves, and how they are applied without
cutting off the session applying them, are :mod:`mailkit.core.resources.firewall`'s.

>>> served_ports([1, 2], acme=False)
(22, 25, 143, 465, 587, 993)
>>> served_ports([1, 2, 3, 4], acme=True, ssh_port=2222)
(25, 80, 143, 443, 465, 587, 993, 2222, 4190)
"""

from __future__ import annotations

from collections.abc import Sequence

from mailkit.clients.reach import port_states
from mailkit.core.checks import CheckResult, CheckTable
from mailkit.core.resources import Packages, Resource
from mailkit.core.resources.nftables import Firewall, port_number
from mailkit.core.ssh import Connection
from mailkit.guide.chapters import PORTS
from mailkit.guide.parts import Parts
from mailkit.server import rules
from mailkit.server.target import Target

#: Ports a mail server does not serve, probed to show the firewall drops them: telnet, HTTP (without ACME), the
#: alternative HTTP port, MySQL, Redis and rspamd's web interface (both listen on localhost only: a firewall
#: keeps them unreachable should that ever change).
CLOSED_SAMPLE = (23, 80, 3306, 6379, 8080, 11334)
GUIDE = "04-spam-inbound.ipynb"
#: certbot's HTTP-01 challenge: its own web server on port 80, for the seconds it asks for a certificate.
CERTBOT_PORT = 80


#: What section 8 installs.
PACKAGES = ("nftables",)


def served_ports(applied: Sequence[int], acme: bool, ssh_port: int = 22) -> tuple[int, ...]:
    """SSH, every port the applied parts serve, and 80 for certbot when the certificate comes from an ACME CA."""
    ports = {port_number(ssh_port, "SSH_PORT")} | {n for n, (_, _, part) in PORTS.items() if part in applied}
    return tuple(sorted(ports | ({CERTBOT_PORT} if acme else set())))


def firewall(guide: Parts, applied: Sequence[int] = (1, 2, 3, 4), ssh_port: int = 22) -> list[Resource]:
    """nftables, and rules that open exactly :func:`served_ports`."""
    ports = served_ports(applied, guide.part2.acme_server is not None, ssh_port)
    return [Packages(PACKAGES), Firewall(ports)]


def verify(guide: Parts, outside: Connection, target: Target, ssh_port: int = 22) -> CheckTable:
    """From the outside host, on IPv4 and IPv6: every served port answers, the sample of others gets no answer."""
    served = served_ports([1, 2, 3, 4], guide.part2.acme_server is not None, ssh_port)
    now_and_then = [p for p in served if p == CERTBOT_PORT]  # certbot listens only while it asks for a certificate
    always = [p for p in served if p not in now_and_then]
    closed = [p for p in CLOSED_SAMPLE if p not in served]
    states = port_states(outside, guide.part1.hostname, [*served, *closed])
    fix = f"{GUIDE} section 8: 'nft list ruleset' on the server shows what is loaded"
    results = []
    for family in (4, 6):
        opened, dropped = rules.ports_open(family, always, states), rules.ports_filtered(family, closed, states)
        results.append(CheckResult("firewall", f"served ports answer (IPv{family})", opened.ok, opened.detail, fix))
        if now_and_then:
            through = rules.ports_let_through(family, now_and_then, states)
            name = f"port 80 reaches the server for certbot (IPv{family})"
            results.append(CheckResult("firewall", name, through.ok, through.detail, fix))
        results.append(
            CheckResult("firewall", f"other ports get no answer (IPv{family})", dropped.ok, dropped.detail, fix)
        )
    return CheckTable(results)
