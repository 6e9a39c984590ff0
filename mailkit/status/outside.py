"""The outside probe's answers as rows: ports on IPv4 and IPv6, TLS on each port, AUTH where it belongs, relaying.

>>> rows = port_rows({"198.51.100.25": {"25": "open", "143": "filtered"}}, [25, 143])
>>> [(r.name, r.ok, r.detail) for r in rows][1]
('143 IMAP (STARTTLS) on 198.51.100.25', False, 'filtered: no answer (a firewall drops it)')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mailkit.clients.smtp import relay_tricks
from mailkit.guide.chapters import PORTS
from mailkit.guide.firewall import CLOSED_SAMPLE
from mailkit.server import rules
from mailkit.status.rows import GUIDE_PARTS, Row

_STATES = {
    "open": "open",
    "closed": "closed: refused (nothing listens there, or a firewall rejects)",
    "filtered": "filtered: no answer (a firewall drops it)",
}


def expected_ports(parts: Sequence[int]) -> list[int]:
    """The ports the applied parts open: 25 (part 1), submission and IMAP (part 2), ManageSieve (part 4)."""
    return [port for port, (_, _, part) in PORTS.items() if part in parts]


def port_rows(states: dict[str, dict[str, str]], ports: Sequence[int]) -> list[Row]:
    rows = []
    for address, seen in states.items():
        for port in ports:
            what, _, part = PORTS[port]
            state = seen.get(str(port), "not probed")
            fix = f"{GUIDE_PARTS[part][1]}: is the service running (see the services rows)? Is the firewall open?"
            rows.append(
                Row("ports", f"{port} {what} on {address}", state == "open", _STATES.get(state, state), fix, part=part)
            )
    return rows


def _part_of(port: int) -> int:
    """The part that opens ``port`` (2, TLS's part, for one the guide does not open)."""
    return PORTS[port][2] if port in PORTS else 2


def tls_rows(tls: dict[str, dict[str, Any]], ports: Sequence[int], hostname: str, first: str) -> list[Row]:
    """For each open port on the first address: a verified certificate for the server's name, not about to expire."""
    rows = []
    for port in ports:
        seen = tls.get(str(port))
        if seen is None:
            continue  # not open: its port row already says so
        info = seen.get("tls")
        part = _part_of(port)
        fix = f"02-dovecot.ipynb section 3: a certificate for {hostname} that clients trust, renewed in time (certbot)"
        if part == 3:
            fix = f"03-spam-outbound.ipynb section 14: nginx's default site serves {hostname}'s certificate"
        if "error" in seen and "tls_error" not in seen:
            closed = f"not reached: {seen['error']}"
            why = "journalctl -u 'postfix*' says why (465 and 587 close when Dovecot's auth service is down)"
            rows.append(Row("tls", f"TLS on {port} ({first})", False, closed, why, part=part))
            continue
        if info is None or "tls_error" in seen:
            detail = seen.get("tls_error") or "no TLS offered"
            rows.append(Row("tls", f"TLS on {port} ({first})", False, detail, fix, part=part))
            continue
        # The probe verifies the certificate for ``hostname`` (a mismatch is its tls_error).
        seen_cert = rules.certificate(str(info["version"]), hostname, hostname, float(info["days_left"]))
        rows.append(Row("tls", f"TLS on {port} ({first})", *_said(seen_cert), fix, part=part))
    return rows


def refusal_rows(tls: dict[str, dict[str, Any]], ports: Sequence[int], first: str) -> list[Row]:
    """For each TLS port the probe reached: TLS 1.0 and 1.1 refused, the insufficient cipher suites, and the
    finite-field Diffie-Hellman groups under 2048 bits."""
    versions_fix = (
        "02-dovecot.ipynb section 7: smtpd_tls_protocols for Postfix; Dovecot's ssl_min_protocol is in section 4"
    )
    ciphers_fix = (
        "02-dovecot.ipynb section 7: smtpd_tls_exclude_ciphers for Postfix (Dovecot's defaults leave them out)"
    )
    web_fix = "03-spam-outbound.ipynb section 14: ssl_protocols and ssl_ciphers in /etc/nginx/nginx.conf"
    groups_fix = (
        "02-dovecot.ipynb section 7: no DH parameter file of your own (smtpd_tls_dh1024_param_file for Postfix, "
        "ssl_dh or ssl_server_dh_file for Dovecot): their built-in groups have 2048 bits or more"
    )
    rows = []
    for port in ports:
        seen = tls.get(str(port))
        if seen is None or "refused" not in seen:
            continue  # not open, or not reached: the port and TLS rows say so
        web = _part_of(port) == 3  # the web server's, not the mail services'
        refused = seen["refused"]
        versions = rules.old_tls_refused(refused)
        fix, part = (web_fix, 3) if web else (versions_fix, 2)
        rows.append(Row("tls", f"TLS 1.0 and 1.1 refused on {port} ({first})", *_said(versions), fix, part=part))
        ciphers = rules.insufficient_ciphers_refused(refused.get("insufficient_ciphers", ""))
        fix = web_fix if web else ciphers_fix
        rows.append(Row("tls", f"insufficient ciphers refused on {port} ({first})", *_said(ciphers), fix, part=part))
        groups = rules.dh_groups_strong(refused.get("dhe", ""))
        fix = web_fix if web else groups_fix
        rows.append(Row("tls", f"no Diffie-Hellman group under 2048 bits on {port} ({first})", *_said(groups), fix,
                        part=part))  # fmt: skip
    return rows


def greeting_rows(tls: dict[str, dict[str, Any]], hostname: str) -> list[Row]:
    """Port 25's greeting names the server (the name its PTR and HELO give)."""
    seen = tls.get("25")
    if seen is None or "greeting" not in seen:
        return []  # port 25 not open or not reached: its rows say so
    verdict = rules.greeting_names(str(seen["greeting"]), hostname)
    fix = f"03-spam-outbound.ipynb section 2: myhostname = {hostname}; smtpd_banner starts with $myhostname"
    return [Row("reverse dns", "SMTP greeting names the server (as its PTR does)", *_said(verdict), fix, part=3)]


def auth_rows(tls: dict[str, dict[str, Any]]) -> list[Row]:
    """No AUTH on 25 at all; on 587 AUTH only after STARTTLS; IMAP refuses LOGIN before STARTTLS."""
    rows = []
    smtp = tls.get("25")
    if smtp and "auth_after_tls" in smtp:
        offered = bool(smtp.get("auth_before_tls")) or bool(smtp.get("auth_after_tls"))
        rows.append(
            Row(
                "auth",
                "no AUTH on 25 (servers do not log in)",
                not offered,
                "AUTH offered" if offered else "no AUTH, before or after STARTTLS",
                "02-dovecot.ipynb section 7: smtpd_sasl_auth_enable = no in main.cf; yes on 587/465 only",
                part=2,
            )
        )
    submission = tls.get("587")
    if submission and "auth_after_tls" not in submission:
        rows.append(
            Row(
                "auth",
                "587: AUTH offered after STARTTLS",
                False,
                f"not reached: {submission.get('error') or 'no STARTTLS'}",
                "02-dovecot.ipynb section 7: is Dovecot running (its auth socket serves Postfix)?",
                part=2,
            )
        )
    elif submission:
        early = rules.no_auth_before_tls(submission.get("auth_before_tls"), submission.get("starttls_offered", True))
        later = submission.get("auth_after_tls", [])
        rows.append(
            Row(
                "auth",
                "587: no AUTH before STARTTLS",
                *_said(early),
                "02-dovecot.ipynb section 7: smtpd_tls_auth_only = yes",
                part=2,
            )
        )
        rows.append(
            Row(
                "auth",
                "587: AUTH offered after STARTTLS",
                bool(later),
                " ".join(later) or "no AUTH offered",
                "02-dovecot.ipynb section 7: is Dovecot running (its auth socket serves Postfix)?",
                part=2,
            )
        )
    imap = tls.get("143")
    if imap and "capabilities_before_tls" in imap:
        rows.append(
            Row(
                "auth",
                "143: LOGIN refused before STARTTLS (LOGINDISABLED)",
                *_said(rules.cleartext_login_refused(imap["capabilities_before_tls"])),
                "02-dovecot.ipynb section 4: auth_allow_cleartext = no (2.4), disable_plaintext_auth (2.3)",
                part=2,
            )
        )
    sieve = tls.get("4190")
    if sieve and "sasl_before_tls" in sieve:
        early_sasl = sieve.get("sasl_before_tls", [])
        rows.append(
            Row(
                "auth",
                "4190: no login before STARTTLS",
                not early_sasl,
                "SASL offered in clear text" if early_sasl else "SASL only after STARTTLS",
                "04-spam-inbound.ipynb section 5",
                part=4,
            )
        )
    return rows


def relay_rows(seen: dict[str, Any], domain: str, other: str = "other.test") -> list[Row]:
    """Every relay trick of part 1 must be refused for good (5xx) at MAIL FROM or RCPT TO.

    ``other`` must be a domain that really takes mail: a server that checks recipient domains would otherwise
    refuse the relay for that reason alone, and an open relay would pass unseen.
    """
    if "envelope_error" in seen and not seen.get("relay"):
        return [Row("relay", "relay tricks on 25", False, seen["envelope_error"], "01-postfix.ipynb section 7", part=1)]
    answers = {label: (code, text) for label, _rcpt, code, text in seen.get("relay", [])}
    rows = []
    for label, _sender, rcpt in relay_tricks(domain, other):
        code, text = answers.get(label, (0, "not tried"))
        rows.append(
            Row(
                "relay",
                f"relay refused: {label} ({rcpt})",
                *_said(rules.relay_refused(code, text)),
                "01-postfix.ipynb section 7: mynetworks only loopback; smtpd_relay_restrictions ends in "
                "reject_unauth_destination",
                part=1,
            )
        )
    return rows


def role_rows(seen: dict[str, Any]) -> list[Row]:
    """postmaster@ and abuse@ accept mail (RFC 2142): RCPT TO only, nothing is sent."""
    return [
        Row(
            "roles",
            f"{rcpt} accepts mail (RFC 2142)",
            *_said(rules.role_accepts(code, text)),
            "01-postfix.ipynb section 9: an alias for postmaster@ and abuse@ of every domain",
            part=1,
        )
        for rcpt, code, text in seen.get("roles", [])
    ]


#: Ports a mail server does not serve, for ``mailkit check`` to see the firewall drop (part 4, section 8): the
#: guide's sample without 80, which servers whose certificate comes by HTTP-01 open for certbot.
FIREWALL_SAMPLE = tuple(p for p in CLOSED_SAMPLE if p != 80)


def firewall_rows(closed: dict[str, dict[str, str]], sample: Sequence[int] = FIREWALL_SAMPLE) -> list[Row]:
    """Per address: the ports nothing should serve get no answer (part 4's firewall drops them)."""
    rows = []
    for address, seen in closed.items():
        family = 6 if ":" in address else 4
        states = {(family, int(p)): state for p, state in seen.items() if p.isdigit()}
        verdict = rules.ports_filtered(family, sample, states)
        fix = "04-spam-inbound.ipynb section 8: the firewall ('nft list ruleset' shows what is loaded)"
        rows.append(Row("firewall", f"other ports get no answer on {address}", *_said(verdict), fix, part=4))
    return rows


def outside_rows(
    seen: dict[str, Any], ports: Sequence[int], hostname: str, domain: str, other: str = "other.test"
) -> list[Row]:
    states = seen.get("ports", {})
    first = next(iter(states), "")
    return [
        *port_rows(states, ports),
        *tls_rows(seen.get("tls", {}), ports, hostname, first),
        *refusal_rows(seen.get("tls", {}), ports, first),
        *greeting_rows(seen.get("tls", {}), hostname),
        *auth_rows(seen.get("tls", {})),
        *relay_rows(seen, domain, other),
        *role_rows(seen),
    ]


def _said(verdict: rules.Verdict) -> tuple[bool, str]:
    return verdict.ok, verdict.detail
