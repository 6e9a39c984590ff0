"""What the world's DNS says about a mail server: MX, A/AAAA, CAA, forward-confirmed PTR, SPF, DKIM, DMARC,
MTA-STS, TLS-RPT and block lists, asked through one resolver.

>>> lookup = lambda name, rtype: {("example.org", "MX"): ("10 mail.example.org.",)}.get((name, rtype), ())
>>> [r.ok for r in mx_rows(["example.org"], "mail.example.org", lookup)]
[True]
"""

from __future__ import annotations

from collections.abc import Sequence

from mailkit.core.errors import MailkitError
from mailkit.core.text import shorten
from mailkit.core.values import Domain, ValueRejected
from mailkit.domain import mtasts
from mailkit.domain.dnssec import ROOT_ANCHOR, Ask, validate
from mailkit.domain.lookup import forward_confirmed, spf_result
from mailkit.domain.published import (
    Lookup,
    blocklist_query,
    decode_blocklist_answer,
    dkim_key,
    dmarc_problems,
    domain_blocklist_query,
    relevant_caa,
    report_destinations,
    spf_all_qualifier,
    spf_lookups,
    spf_records,
    txt_records,
    unauthorized_destinations,
)
from mailkit.server import rules
from mailkit.status.rows import GUIDE_PARTS, Row

P1, P2, P3, P4 = GUIDE_PARTS[1][1], GUIDE_PARTS[2][1], GUIDE_PARTS[3][1], GUIDE_PARTS[4][1]


def mx_rows(domains: Sequence[str], hostname: str, lookup: Lookup) -> list[Row]:
    rows = []
    for domain in domains:
        seen = rules.exchanger(lookup(domain, "MX"), hostname)
        fix = f"{P1} section 10: publish '{domain}. MX 10 {hostname}.'"
        rows.append(Row("dns", f"MX of {domain}", seen.ok, seen.detail, fix, part=1))
    return rows


def address_rows(hostname: str, addresses: dict[str, list[str]]) -> list[Row]:
    v4, v6 = addresses["4"], addresses["6"]
    return [
        Row(
            "dns",
            f"A of {hostname}",
            bool(v4),
            " ".join(v4) or "no A record",
            f"{P1} section 10: publish an A record for {hostname}",
            part=1,
        ),
        Row("dns", f"AAAA of {hostname}", True, " ".join(v6) or "none (the server is not offered over IPv6)", part=1),
    ]


def caa_row(hostname: str, lookup: Lookup) -> Row:
    """Which CAs may issue the server's certificate (RFC 8659): a record that lets none is a renewal that fails."""
    name = f"CAA of {hostname} lets a CA issue its certificate"
    try:
        owner, records = relevant_caa(hostname, lookup)
    except MailkitError as exc:
        return Row("certificate", name, False, f"cannot tell: {shorten(str(exc), 120)}", "check the resolver", part=2)
    seen = rules.caa_allows_issuing(records, owner)
    fix = (
        f"{P2} section 3: a CAA record naming your CA ('{owner or hostname}. CAA 0 issue \"letsencrypt.org\"'), or none"
    )
    return Row("certificate", name, seen.ok, seen.detail, fix, part=2)


def ptr_rows(hostname: str, addresses: dict[str, list[str]], lookup: Lookup) -> list[Row]:
    """Forward-confirmed reverse DNS: each address's PTR names the server, and that name has the address."""
    rows = []
    for family in ("4", "6"):
        for address in addresses[family]:
            ok, published = forward_confirmed(address, hostname, lookup)
            names = [n.rstrip(".") for n in published]
            seen = f"PTR {' '.join(names)}" if names else "no PTR record"
            if names and names != [hostname]:
                seen += f" (not {hostname})"
            rows.append(
                Row(
                    "reverse dns",
                    f"PTR of {address} (forward-confirmed)",
                    ok,
                    seen,
                    f"{P3} section 2: ask your hosting provider to set the PTR of {address} to {hostname}",
                    part=3,
                )
            )
    return rows


def spf_rows(
    domains: Sequence[str], hostname: str, addresses: dict[str, list[str]], lookup: Lookup, nameserver: str | None
) -> list[Row]:
    """One SPF record per domain and for the HELO name, allowing the server's addresses, in 10 lookups or fewer."""
    rows = []
    for name in [*domains, hostname]:
        label = f"SPF of {name}" + (" (the HELO name)" if name == hostname else "")
        fix = f"{P3} section 3: publish '{name}. TXT \"v=spf1 {'a' if name == hostname else 'mx'} -all\"'"
        records = spf_records(lookup, name)
        if len(records) != 1:
            seen = "no SPF record" if not records else f"{len(records)} SPF records (only one is allowed)"
            rows.append(Row("spf", label, False, seen, fix, part=3))
            continue
        count = spf_lookups(name, lookup)
        sender = f"postmaster@{name}"
        verdicts = {a: spf_result(a, sender, hostname, nameserver) for f in ("4", "6") for a in addresses[f]}
        refused = [f"{a}: {v}" for a, v in verdicts.items() if v != "pass"]
        ending = spf_all_qualifier(records[0])
        problems = [*count.problems, *refused]
        if ending not in ("-all", "~all"):
            problems.append(f"ends in {ending or 'no all'}: end it in -all")
        seen = "; ".join(problems) if problems else f"{records[0]} ({count.lookups} lookups, {len(verdicts)} pass)"
        rows.append(Row("spf", label, not problems, seen, fix, part=3))
    return rows


def dkim_rows(domains: Sequence[str], selector: str | None, server_keys: dict[str, str], lookup: Lookup) -> list[Row]:
    """The key published under the selector equals the key the server signs with, and has 2048 bits or more."""
    rows = []
    for domain in domains:
        name = f"{selector}._domainkey.{domain}" if selector else f"_domainkey.{domain}"
        fix = f"{P3} section 4: publish the record the notebook shows (the server's own public key)"
        if not selector:
            rows.append(Row("dkim", f"DKIM key of {domain}", False, "no selector: is rspamd signing?", fix, part=3))
            continue
        records = txt_records(lookup, name, "v=DKIM1") or [t for t in txt_records(lookup, name, "") if "p=" in t]
        key = dkim_key(records[0]) if len(records) == 1 else None
        problems = []
        if key is None:
            problems.append("no key published" if not records else f"{len(records)} records, one expected")
        else:
            if domain in server_keys and key.public != server_keys[domain]:
                problems.append("differs from the server's key")
            if domain not in server_keys:
                problems.append("the server has no key for this domain")
            if key.key_type == "rsa" and key.bits < 2048:
                problems.append(f"RSA-{key.bits or '?'}: use 2048 bits or more")
        seen = (
            "; ".join(problems) if problems or key is None else f"{key.key_type.upper()}-{key.bits}, the server's key"
        )
        rows.append(Row("dkim", f"DKIM {name}", not problems, seen, fix, part=3))
    return rows


def dmarc_rows(domains: Sequence[str], lookup: Lookup) -> list[Row]:
    rows = []
    for domain in domains:
        records = txt_records(lookup, f"_dmarc.{domain}", "v=DMARC1")
        fix = f"{P3} section 5: publish '_dmarc.{domain}. TXT \"v=DMARC1; p=none; rua=mailto:postmaster@{domain}\"'"
        if len(records) != 1:
            seen = "no DMARC record" if not records else f"{len(records)} DMARC records (one is allowed)"
            rows.append(Row("dmarc", f"DMARC of {domain} (RFC 9989)", False, seen, fix, part=3))
            continue
        problems = dmarc_problems(records[0])
        rows.append(
            Row("dmarc", f"DMARC of {domain} (RFC 9989)", not problems, "; ".join(problems) or records[0], fix, part=3)
        )
        rows.append(report_destination_row(domain, records[0], lookup))
    return rows


#: The most report destinations one DMARC record is followed to (each may cost a tree walk of 8 queries).
MAX_REPORT_DESTINATIONS = 5


def report_destination_row(domain: str, record: str, lookup: Lookup) -> Row:
    """Each aggregate-report address outside the domain's own organization has agreed to take its reports. The
    record is the world's to write: its destinations are checked as domain names and followed only so far."""
    name = f"DMARC reports of {domain} go where they are accepted"
    destinations = report_destinations(record)
    if not destinations:
        return Row("dmarc", name, True, "no rua: nobody gets aggregate reports (optional)", part=3)
    fix = f"{P3} section 5: rua=mailto: addresses of {domain}, or of domains that agreed to take its reports"
    for destination in destinations:
        try:
            Domain(destination)
        except ValueRejected:
            return Row("dmarc", name, False, f"rua names no domain: {shorten(destination, 80)}", fix, part=3)
    if len(destinations) > MAX_REPORT_DESTINATIONS:
        seen = f"{len(destinations)} report domains (more than {MAX_REPORT_DESTINATIONS} are not followed)"
        return Row("dmarc", name, False, seen, fix, part=3)
    try:
        refused = unauthorized_destinations(domain, record, lookup)
    except MailkitError as exc:
        return Row("dmarc", name, False, f"cannot tell: {shorten(str(exc), 120)}", "check the resolver", part=3)
    if not refused:
        return Row("dmarc", name, True, f"rua to {', '.join(destinations)}", part=3)
    fix = (
        f"publish '{domain}._report._dmarc.{refused[0]}. TXT \"v=DMARC1\"' in {refused[0]} (its owner must), or "
        f"send the reports to an address of {domain}"
    )
    detail = "; ".join(f"{d} has not agreed (no {domain}._report._dmarc.{d})" for d in refused)
    return Row("dmarc", name, False, detail, fix, part=3)


def parked_rows(domains: Sequence[str], lookup: Lookup) -> list[Row]:
    """Domains you own that send and take no mail (``--parked-domain``): a null MX (RFC 7505), ``v=spf1 -all`` and
    DMARC ``p=reject``, so nobody can send in their name or take their mail."""
    rows = []
    for domain in domains:
        fix = f"{P3} section 3: publish '{domain}. MX 0 .', '{domain}. TXT \"v=spf1 -all\"' and "
        fix += f"'_dmarc.{domain}. TXT \"v=DMARC1; p=reject\"'"
        try:
            mx = rules.null_mx(lookup(domain, "MX"))
            spf = rules.spf_sends_nothing(spf_records(lookup, domain))
            dmarc = txt_records(lookup, f"_dmarc.{domain}", "v=DMARC1")
        except MailkitError as exc:
            rows.append(Row("parked", f"{domain} sends and takes no mail", False,
                            f"cannot tell: {shorten(str(exc), 120)}", "check the resolver", part=3))  # fmt: skip
            continue
        rejects = rules.dmarc_rejects(dmarc)
        rows += [
            Row("parked", f"{domain} takes no mail (null MX)", mx.ok, mx.detail, fix, part=3),
            Row("parked", f"{domain} sends no mail (SPF -all)", spf.ok, spf.detail, fix, part=3),
            Row("parked", f"mail in {domain}'s name is refused (DMARC p=reject)", rejects.ok, rejects.detail, fix,
                part=3),
        ]  # fmt: skip
    return rows


def policy_rows(domains: Sequence[str], hostname: str, lookup: Lookup, ca_file: str | None = None) -> list[Row]:
    """MTA-STS (RFC 8461) and TLS-RPT (RFC 8460): optional; when published, the MTA-STS policy is fetched over
    HTTPS as a sending server would and must name the server."""
    rows = []
    for domain in domains:
        sts = txt_records(lookup, f"_mta-sts.{domain}", "v=STSv1")
        fix = (
            f"RFC 8461: one record '_mta-sts.{domain}. TXT \"v=STSv1; id=<letters and digits>\"' and a policy at "
            f"https://mta-sts.{domain}{mtasts.POLICY_PATH} whose mx lines match {hostname}"
        )
        if not sts:
            rows.append(Row("mta-sts", f"MTA-STS of {domain}", True, "not published (optional)", part=3))
        else:
            rows.append(Row("mta-sts", f"MTA-STS of {domain}", *_mta_sts(domain, sts, hostname, lookup, ca_file),
                            fix, part=3))  # fmt: skip
        rpt = txt_records(lookup, f"_smtp._tls.{domain}", "v=TLSRPTv1")
        if not rpt:
            rows.append(Row("tls-rpt", f"TLS-RPT of {domain}", True, "not published (optional)", part=3))
        else:
            ok = len(rpt) == 1 and ("rua=mailto:" in rpt[0] or "rua=https:" in rpt[0])
            rows.append(
                Row(
                    "tls-rpt",
                    f"TLS-RPT of {domain}",
                    ok,
                    rpt[0],
                    "RFC 8460: 'v=TLSRPTv1; rua=mailto:tls-reports@<domain>'",
                    part=3,
                )
            )
    return rows


def _mta_sts(domain: str, records: list[str], hostname: str, lookup: Lookup, ca_file: str | None) -> tuple[bool, str]:
    tags = dict(t.strip().partition("=")[::2] for t in records[0].split(";") if "=" in t)
    if len(records) != 1 or not tags.get("id", "").isalnum():
        return False, f"invalid record: {'; '.join(records)}"
    try:
        addresses = mtasts.policy_host_addresses(lookup, domain)
    except MailkitError as exc:
        return False, str(exc)
    if not addresses:
        return False, f"mta-sts.{domain} has no address: the policy cannot be fetched"
    try:
        policy = mtasts.parse_policy(mtasts.fetch_policy(domain, addresses[0], cafile=ca_file))
    except MailkitError as exc:
        return False, str(exc)
    problems = mtasts.policy_problems(policy, hostname)
    if problems:
        return False, "; ".join(problems)
    return True, f"id={tags['id']}, mode {policy['mode'][0]}, max_age {policy['max_age'][0]}, mx matches {hostname}"


#: Where a block list that refused to answer sends you.
_REFUSED_FIX = "ask through your own resolver (--nameserver), or use the list's paid access (Spamhaus DQS)"


def dnssec_rows(domains: Sequence[str], hostname: str, ask: Ask | None, anchor: str) -> list[Row]:
    """Each domain's MX and the mail host's address, signed and valid from the root (:mod:`mailkit.domain.dnssec`):
    red when not signed (nothing protects the answers) and when bogus (validating resolvers refuse them)."""
    if ask is None:
        return []
    fix = f"{P3} section 6: sign the zone where your DNS is hosted, then hand its DS to your registrar"
    rows = []
    for name, rtype in [*((d, "MX") for d in domains), (hostname, "A")]:
        try:
            chain = validate(name, rtype, ask, anchor)
        except MailkitError as exc:
            rows.append(Row("dnssec", f"{rtype} of {name} signed (DNSSEC)", False, f"cannot tell: {exc}", fix, part=3))
            continue
        detail = {"insecure": "not signed: ", "bogus": "BOGUS (validating resolvers refuse it): "}.get(chain.state, "")
        rows.append(
            Row(
                "dnssec",
                f"{rtype} of {name} signed (DNSSEC)",
                chain.state == "secure",
                detail + chain.detail,
                fix,
                part=3,
            )
        )
    return rows


def _listing_row(subject: str, zone: str, query: str, lookup: Lookup, listed_fix: str, part: int) -> Row:
    """One subject (an address, a domain) on one block list; Spamhaus's refusals are told apart from listings."""
    name = f"{subject} on {zone}"
    try:
        answer = decode_blocklist_answer(zone, lookup(query, "A"))
    except MailkitError as exc:
        return Row("block lists", name, False, f"cannot tell: {exc}", "check the resolver (--nameserver)", part=part)
    fix = listed_fix if answer.listed else _REFUSED_FIX
    return Row("block lists", name, answer.conclusive and not answer.listed, answer.meaning, fix, part=part)


def _zones(blocklists: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(site.split("*")[0].split("=")[0] for site in blocklists))  # postscreen's syntax


def blocklist_rows(addresses: dict[str, list[str]], blocklists: Sequence[str], lookup: Lookup) -> list[Row]:
    """The server's IPv4 addresses on each DNS block list."""
    rows = []
    for address in addresses["4"]:
        fix = f"{P4} section 3: ask the list to delist {address} (its site says why it is listed)"
        rows += [_listing_row(address, z, blocklist_query(address, z), lookup, fix, 4) for z in _zones(blocklists)]
    return rows


def domain_blocklist_rows(domains: Sequence[str], blocklists: Sequence[str], lookup: Lookup) -> list[Row]:
    """Each mail domain on each domain block list: receivers mark mail from a listed domain as spam, whatever
    the server's own standing (part 3's subject)."""
    fix = "look the domain up on the list's site: it says why it is listed, and how to be delisted once mended"
    return [
        _listing_row(domain, zone, domain_blocklist_query(domain, zone), lookup, fix, 3)
        for domain in domains
        for zone in _zones(blocklists)
    ]


def dns_rows(
    domains: Sequence[str],
    hostname: str,
    addresses: dict[str, list[str]],
    lookup: Lookup,
    *,
    nameserver: str | None,
    selector: str | None,
    server_keys: dict[str, str],
    blocklists: Sequence[str],
    parts: Sequence[int],
    ca_file: str | None = None,
    domain_blocklists: Sequence[str] = (),
    parked_domains: Sequence[str] = (),
    ask: Ask | None = None,
    trust_anchor: str = ROOT_ANCHOR,
) -> list[Row]:
    """Every DNS row for the parts applied on the server (``ca_file``: a private CA for the MTA-STS policy's site;
    ``ask``: the resolver asked for DNSSEC's signatures, none for no DNSSEC rows)."""
    rows = [*mx_rows(domains, hostname, lookup), *address_rows(hostname, addresses)]
    if 2 in parts:
        rows.append(caa_row(hostname, lookup))
    if 3 in parts:
        rows += ptr_rows(hostname, addresses, lookup)
        rows += spf_rows(domains, hostname, addresses, lookup, nameserver)
        rows += dkim_rows(domains, selector, server_keys, lookup)
        rows += dmarc_rows(domains, lookup)
        rows += dnssec_rows(domains, hostname, ask, trust_anchor)
        rows += policy_rows(domains, hostname, lookup, ca_file)
        rows += domain_blocklist_rows(domains, domain_blocklists, lookup)
    rows += parked_rows(parked_domains, lookup)
    if 4 in parts:
        rows += blocklist_rows(addresses, blocklists, lookup)
    return rows
