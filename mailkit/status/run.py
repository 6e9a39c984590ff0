"""``mailkit check``: a live mail server's status, from inside (over SSH) and from outside (ports, TLS, DNS).

What differs between the lab and your own server (resolver, block lists, a foreign domain for the relay tricks,
the CA) comes from the target value (:func:`mailkit.server.target.target`).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mailkit.clients.read_back import ReadAccount
from mailkit.clients.smtp import relay_tricks
from mailkit.core.errors import UsageError
from mailkit.core.values import Domain, EmailAddress, Hostname
from mailkit.domain.dnssec import ROOT_ANCHOR, resolver_ask
from mailkit.domain.lookup import remembered, resolver_lookup, server_addresses
from mailkit.guide.chapters import PORTS
from mailkit.server import rules
from mailkit.status import sending
from mailkit.status.dane_rows import own_resolver_row, tlsa_rows
from mailkit.status.dnschecks import dns_rows
from mailkit.status.inside import inside_rows, read_facts, read_reports, report_rows
from mailkit.status.outside import FIREWALL_SAMPLE, expected_ports, firewall_rows, outside_rows
from mailkit.status.rows import Row, StatusReport
from mailkit.status.vantage import run_probe

if TYPE_CHECKING:
    from mailkit.server.target import Target


def check_server(
    target: str,
    *,
    domains: Sequence[str] = (),
    vantage: str | None = None,
    nameserver: str | None = None,
    blocklists: Sequence[str] | None = None,
    domain_blocklists: Sequence[str] | None = None,
    parked_domains: Sequence[str] = (),
    parts: Sequence[int] | None = None,
    ca_file: str | None = None,
    send_to: str | None = None,
    read_at: str | None = None,
    read_as: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> StatusReport:
    """Check the server at ``target`` from inside and from ``vantage`` (None: this machine). Never changes it.

    ``parked_domains``: domains of yours that send and take no mail, checked for a null MX, SPF -all and p=reject.
    ``send_to``: opt-in, the only thing that sends: one message from the server to that address, read back over
    IMAPS at ``read_at`` as ``read_as`` (default: the address itself), judged by that provider's verdicts.
    """
    from mailkit.server.target import connect, resolve_target, target_of

    server = target_of(target, nameserver=nameserver)
    target = server.name
    given = [str(Domain(d, field="--domain")) for d in domains]
    parked = [str(Domain(d, field="--parked-domain")) for d in parked_domains]
    lists = tuple(blocklists) if blocklists is not None else server.blocklists
    domain_lists = tuple(domain_blocklists) if domain_blocklists is not None else server.domain_blocklists
    nameserver = server.nameserver
    reader = _read_account(server, send_to, read_at, read_as)
    token = secrets.token_hex(8)
    with server.connect() as conn:
        progress(f"reading {target}")
        facts = read_facts(conn, parts)
        if given:
            facts.domains = given
        rows: list[Row] = inside_rows(conn, facts, server.offline, lists, server.foreign_exchanger)
        report_messages = read_reports(conn, facts)
        if 3 in facts.parts and facts.domains:
            rows.append(own_resolver_row(conn, facts.domains[0]))
        if reader is not None and facts.domains:
            progress(f"sending one message to {send_to} (--send-to)")
            sending.send_from_server(conn, facts.domains[0], EmailAddress(str(send_to)), token)
    if not facts.hostname:
        return StatusReport(target, vantage or "this machine", rows)
    progress(f"asking DNS ({nameserver or 'the system resolver'})")
    lookup = remembered(resolver_lookup(nameserver))  # one answer per question in one run
    ask, anchor = resolver_ask(nameserver), server.trust_anchor or ROOT_ANCHOR  # for the DNSSEC and DANE rows
    addresses = server_addresses(facts.hostname, lookup)
    here_ca = ca_file or server.ca_file_here()
    rows += dns_rows(
        facts.domains,
        facts.hostname,
        addresses,
        lookup,
        nameserver=nameserver,
        selector=facts.selector,
        server_keys=facts.public_keys,
        blocklists=lists,
        parts=facts.parts,
        ca_file=here_ca,
        domain_blocklists=domain_lists,
        parked_domains=parked,
        ask=ask,
        trust_anchor=anchor,
    )
    rows += report_rows(report_messages, addresses)
    ports = expected_ports(facts.parts)
    request = {
        "hostname": facts.hostname,
        "addresses": addresses,
        "ports": ports,
        "closed": list(FIREWALL_SAMPLE) if 4 in facts.parts else [],  # part 4's firewall drops them
        "tls": [[p, PORTS[p][1]] for p in ports] if 2 in facts.parts else [],  # TLS is part 2's
        "relay": relay_tricks(facts.domains[0], server.relay_domain),
        "roles": [f"{role}@{d}" for d in facts.domains for role in rules.REQUIRED_ROLES],
        "helo": server.helo,
        "cafile": here_ca if vantage is None else ca_file,
    }
    progress(f"probing {facts.hostname} from {vantage or 'this machine'}")
    if vantage is None:
        seen = run_probe(request, None)
    else:
        with connect(resolve_target(vantage)) as outside:
            seen = run_probe(request, outside)
    rows += outside_rows(seen, ports, facts.hostname, facts.domains[0], server.relay_domain)
    if 3 in facts.parts:
        served = seen.get("tls", {}).get("25", {}).get("keys")
        rows += tlsa_rows(facts.hostname, served, ask, anchor)
    rows += firewall_rows(seen.get("closed", {})) if 4 in facts.parts else []
    if reader is not None and facts.domains:
        progress(f"reading it back at {reader.host} as {reader.user}")
        rows.append(sending.read_back_row(reader, token, facts.domains[0], lookup, ca_file=here_ca))
    elif 3 in facts.parts:
        rows.append(sending.not_asked())
    return StatusReport(target, vantage or "this machine", rows)


def _read_account(server: Target, send_to: str | None, read_at: str | None, read_as: str | None) -> ReadAccount | None:
    """The account the message is read back from, every value checked (and its password found or asked for)
    before anything is sent; None when nothing is to be sent."""
    if send_to is None:
        if read_at is not None or read_as is not None:
            raise UsageError("--read-at and --read-as go with --send-to")
        return None
    if read_at is None:
        raise UsageError("--send-to needs --read-at: the IMAP server of that address's provider")
    EmailAddress(send_to, field="--send-to")
    user = EmailAddress(read_as or send_to, field="--read-as")
    host = Hostname(read_at, field="--read-at")
    return ReadAccount(host, user, server.passwords([str(user)])[str(user)])


# -- what changed since the last run ---------------------------------------------------------------------------------
def state_file(target: str, base: Path | None = None) -> Path:
    """Where the previous run of a target is kept: under ``$XDG_STATE_HOME/mailkit/check`` (or ``~/.local/state``).

    >>> state_file("admin@mail.example.net", Path("/s")).name
    'admin@mail.example.net.json'
    """
    if base is None:
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "mailkit" / "check"
    name = target.replace("/", "_").replace(":", "_")
    if name.startswith("."):
        raise UsageError(f"cannot keep the state of {target!r}")
    return base / f"{name}.json"


def changes_since(previous: dict[str, dict[str, object]], rows: Sequence[Row]) -> list[str]:
    """Rows that appeared, went away, turned red or green, or show another value since the previous run.

    >>> old = {"ports / 25": {"ok": True, "detail": "open"}}
    >>> changes_since(old, [Row("ports", "25", False, "closed")])
    ['ports / 25: ok -> FAIL (open -> closed)']
    """
    now = {r.key: r for r in rows}
    found = []
    for key, row in now.items():
        before = previous.get(key)
        if before is None:
            found.append(f"{key}: new ({'ok' if row.ok else 'FAIL'}: {row.detail})")
        elif before["ok"] != row.ok:
            verdict = f"{'ok' if before['ok'] else 'FAIL'} -> {'ok' if row.ok else 'FAIL'}"
            found.append(f"{key}: {verdict} ({before['detail']} -> {row.detail})")
        elif before["detail"] != row.detail:
            found.append(f"{key}: {before['detail']} -> {row.detail}")
    found += [f"{key}: gone" for key in previous if key not in now]
    return found


def record_changes(report: StatusReport, path: Path) -> None:
    """Compare with the run kept in ``path`` (if any), put the changes in the report, keep this run instead."""
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        previous = None
    if previous is not None:
        report.changes = changes_since(previous, report.rows)
    else:
        report.changes = ["first run: nothing to compare with yet"]
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    kept = {r.key: {"ok": r.ok, "detail": r.detail} for r in report.rows}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(kept, indent=1, sort_keys=True))
    tmp.replace(path)
