"""What a well-set mail server shows, one rule per check: pure functions from what was seen to a verdict.

The guide's checks (``guide/partN_checks``) and ``mailkit check`` (``status/``) look at the server with different
clients and word their own fixes; whether a check passes, and how what was seen is said, is decided here, once.

>>> relay_refused(554, "5.7.1 <victim@other.test>: Relay access denied")
Verdict(ok=True, detail='554 5.7.1 <victim@other.test>: Relay access denied')
>>> relay_refused(454, "4.7.1 <victim@other.test>: Relay access denied").ok  # Debian's safety net: retried for days
False
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailkit.core.text import shorten
from mailkit.domain.published import CAA_KNOWN_TAGS, caa_record, dmarc_tags
from mailkit.domain.reports import Source, TlsReport
from mailkit.server.certificates import MIN_DAYS_LEFT, fresh

if TYPE_CHECKING:
    from mailkit.server.bans import Bans

#: The role addresses every mail domain must take mail for (RFC 2142): checked by the guide and by mailkit check.
REQUIRED_ROLES = ("postmaster", "abuse")


@dataclass(frozen=True)
class Verdict:
    """Whether a check passes, and what was seen, in words."""

    ok: bool
    detail: str


def exchangers(answers: Sequence[str]) -> list[str]:
    """The mail exchangers of MX rdata as DNS gives them (``"10 mail.example.org."``), most preferred first.

    >>> exchangers(["20 backup.example.net.", "10 mail.example.org.", "garbage"])
    ['mail.example.org', 'backup.example.net']
    """
    parsed = []
    for answer in answers:
        words = answer.split()
        if len(words) == 2 and words[0].isdigit():
            parsed.append((int(words[0]), words[1].rstrip(".")))
    return [name for _, name in sorted(parsed)]


def exchanger(answers: Sequence[str], hostname: str) -> Verdict:
    """The domain's most preferred MX is the server; others may stand by with a higher number.

    >>> exchanger(["20 backup.example.net.", "10 mail.example.org."], "mail.example.org")
    Verdict(ok=True, detail='mail.example.org backup.example.net')
    >>> exchanger([], "mail.example.org")
    Verdict(ok=False, detail='no MX record')
    """
    names = exchangers(answers)
    return Verdict(bool(names) and names[0] == hostname, " ".join(names) or "no MX record")


def certificate(version: str, name: str, hostname: str, days_left: float) -> Verdict:
    """A TLS handshake verified against the client's trust store, for the server's name, not about to expire.

    >>> certificate("TLSv1.3", "mail.example.org", "mail.example.org", 80.2)
    Verdict(ok=True, detail='TLSv1.3, certificate for mail.example.org verified, valid for more than 14 days')
    >>> certificate("TLSv1.3", "mail.example.org", "mail.example.org", 3.4).detail
    'TLSv1.3, certificate for mail.example.org verified, expires in 3 days'
    """
    validity = f"valid for more than {MIN_DAYS_LEFT} days" if fresh(days_left) else f"expires in {days_left:.0f} days"
    return Verdict(name == hostname and fresh(days_left), f"{version}, certificate for {name} verified, {validity}")


def greeting_names(greeting: str, hostname: str) -> Verdict:
    """The SMTP greeting (the 220 line) names the server as its PTR and HELO do: receivers and block-list
    operators compare them, and a greeting with another name (a provider's default, ``localhost``) looks like a
    misconfigured or hijacked host.

    >>> greeting_names("mail.example.org ESMTP Postfix (Debian/GNU)", "mail.example.org")
    Verdict(ok=True, detail='mail.example.org ESMTP Postfix (Debian/GNU)')
    >>> greeting_names("vps-1234.provider.example ESMTP", "mail.example.org").detail
    'vps-1234.provider.example ESMTP (names vps-1234.provider.example, not mail.example.org)'
    """
    said = shorten(greeting)
    name = said.split(" ", 1)[0].rstrip(".").lower() if said else ""
    if not name:
        return Verdict(False, "no greeting")
    if name == hostname.lower():
        return Verdict(True, said)
    return Verdict(False, f"{said} (names {shorten(name, 80)}, not {hostname})")


def old_tls_refused(seen: Mapping[str, str]) -> Verdict:
    """TLS 1.0 and 1.1 are refused (RFC 8996): a server that still accepts them lets a downgraded client talk
    with ciphers and hashes broken for years. A version the client could not offer counts as not shown, never
    as refused.

    >>> old_tls_refused({"TLSv1": "refused: UNSUPPORTED_PROTOCOL", "TLSv1_1": "refused: UNSUPPORTED_PROTOCOL"})
    Verdict(ok=True, detail='TLS 1.0 refused, TLS 1.1 refused')
    >>> old_tls_refused({"TLSv1": "refused: x", "TLSv1_1": "ACCEPTED"})
    Verdict(ok=False, detail='TLS 1.0 refused, TLS 1.1 ACCEPTED')
    >>> old_tls_refused({}).detail
    'TLS 1.0 not tried, TLS 1.1 not tried'
    """
    words = []
    ok = True
    for version, label in (("TLSv1", "TLS 1.0"), ("TLSv1_1", "TLS 1.1")):
        state = seen.get(version, "not tried")
        ok = ok and state.startswith("refused")
        said = state.split(":", 1)[0] if state.startswith(("refused", "ACCEPTED")) else state
        words.append(f"{label} {shorten(said, 100)}")
    return Verdict(ok, ", ".join(words))


def insufficient_ciphers_refused(state: str) -> Verdict:
    """At TLS 1.2, none of the cipher suites the NCSC guidelines call insufficient is accepted: no authentication
    (anonymous Diffie-Hellman: anyone in the middle), no encryption, export-grade, RC4, DES and 3DES, MD5.
    A client that could not offer them counts as not shown, never as refused.

    >>> insufficient_ciphers_refused("refused: NO_SHARED_CIPHER")
    Verdict(ok=True, detail='none accepted (aNULL, eNULL, EXPORT, RC4, DES, 3DES, MD5 offered alone)')
    >>> insufficient_ciphers_refused("ACCEPTED: TLSv1.2 AECDH-AES256-SHA").detail
    'ACCEPTED: TLSv1.2 AECDH-AES256-SHA'
    """
    if state.startswith("refused"):
        return Verdict(True, "none accepted (aNULL, eNULL, EXPORT, RC4, DES, 3DES, MD5 offered alone)")
    return Verdict(False, shorten(state or "not tried", 160))


def dh_groups_strong(state: str) -> Verdict:
    """No finite-field Diffie-Hellman group under 2048 bits (the NCSC guidelines call smaller ones insufficient: the
    key exchange, and with it every message of the session, could be broken later). ``state``: what a client that
    offered DHE alone, refusing groups under 2048 bits, saw. A client that could not offer it counts as not shown.

    >>> dh_groups_strong("ACCEPTED: TLSv1.2 DHE-RSA-AES256-GCM-SHA384")
    Verdict(ok=True, detail='DHE with a group of 2048 bits or more (DHE-RSA-AES256-GCM-SHA384)')
    >>> dh_groups_strong("refused: DH_KEY_TOO_SMALL").detail
    'DHE with a group under 2048 bits (the client said DH_KEY_TOO_SMALL)'
    >>> dh_groups_strong("refused: NO_SHARED_CIPHER")
    Verdict(ok=True, detail='no DHE offered: ECDHE only')
    """
    if state.startswith("ACCEPTED"):
        cipher = state.split()[-1] if len(state.split()) > 2 else "?"
        return Verdict(True, f"DHE with a group of 2048 bits or more ({shorten(cipher, 60)})")
    if state.startswith("refused") and "DH_KEY_TOO_SMALL" in state:
        return Verdict(False, "DHE with a group under 2048 bits (the client said DH_KEY_TOO_SMALL)")
    if state.startswith("refused"):
        return Verdict(True, "no DHE offered: ECDHE only")
    return Verdict(False, shorten(state or "not tried", 160))


def caa_allows_issuing(records: Sequence[str], owner: str = "") -> Verdict:
    """The CAA records that apply to the server's name (RFC 8659) let some CA issue its certificate: none at all is
    fine (any CA may); ``issue ";"`` alone, or a critical property no CA knows, means no CA will, and the next
    renewal fails. ``owner``: where the records were found (the name or a parent).

    >>> caa_allows_issuing([])
    Verdict(ok=True, detail='none: any CA may issue (CAA is optional)')
    >>> caa_allows_issuing(['0 issue "letsencrypt.org"', '0 iodef "mailto:hostmaster@example.org"'], "example.org")
    Verdict(ok=True, detail='at example.org: letsencrypt.org may issue')
    >>> caa_allows_issuing(['0 issue ";"'], "example.org").detail
    'at example.org: issue ";" lets no CA issue: the next renewal fails'
    """
    at = f"at {owner}: " if owner else ""
    if not records:
        return Verdict(True, "none: any CA may issue (CAA is optional)")
    parsed = [caa_record(r) for r in records]
    for raw, record in zip(records, parsed, strict=True):
        if record is None:
            return Verdict(False, f"{at}a CAA record does not parse: {shorten(raw, 80)}")
        if record.critical and record.tag not in CAA_KNOWN_TAGS:
            return Verdict(False, f"{at}critical property {record.tag!r} that no CA knows: none will issue")
    issue = [r for r in parsed if r is not None and r.tag == "issue"]
    if not issue:
        return Verdict(True, f"{at}no issue property: any CA may issue")
    named = sorted({r.issuer for r in issue if re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?", r.issuer)})
    if not named:
        shown = " ".join(f'issue "{shorten(r.value, 40)}"' for r in issue[:3])
        return Verdict(False, f"{at}{shown} lets no CA issue: the next renewal fails")
    return Verdict(True, f"{at}{', '.join(named)} may issue")


def null_mx(answers: Sequence[str]) -> Verdict:
    """A domain that takes no mail says so with one MX ``0 .`` (RFC 7505): senders give up at once instead of
    trying its A record, and no one can take its mail by an exchanger forgotten in the zone.

    >>> null_mx(["0 ."]), null_mx([]).ok
    (Verdict(ok=True, detail='0 . (takes no mail)'), False)
    >>> null_mx(["0 .", "10 mail.example.org."]).detail
    'a null MX beside others (RFC 7505 allows it alone): . mail.example.org'
    """
    parsed = [a.split() for a in answers]
    if len(parsed) == 1 and parsed[0] == ["0", "."]:
        return Verdict(True, "0 . (takes no mail)")
    if not answers:
        return Verdict(False, "no MX: senders try its A and AAAA records instead (RFC 5321 section 5.1)")
    names = " ".join((w[1].rstrip(".") or ".") if len(w) == 2 else shorten(" ".join(w), 40) for w in parsed[:5])
    if any(w[1:] == ["."] for w in parsed):
        return Verdict(False, f"a null MX beside others (RFC 7505 allows it alone): {names}")
    return Verdict(False, f"takes mail at {names}")


def spf_sends_nothing(records: Sequence[str]) -> Verdict:
    """A domain that sends no mail has one SPF record, ``v=spf1 -all``: every sender using its name fails.

    >>> spf_sends_nothing(["v=spf1 -all"]), spf_sends_nothing(["v=spf1 mx -all"]).ok
    (Verdict(ok=True, detail='v=spf1 -all'), False)
    """
    if len(records) != 1:
        return Verdict(False, "no SPF record" if not records else f"{len(records)} SPF records (one is allowed)")
    ok = records[0].lower().split() == ["v=spf1", "-all"]
    return Verdict(ok, shorten(records[0], 120) if ok else f"{shorten(records[0], 100)} (lets some host send)")


def dmarc_rejects(records: Sequence[str]) -> Verdict:
    """One DMARC record whose policy is ``p=reject``: receivers refuse what fails in the domain's name.

    >>> dmarc_rejects(["v=DMARC1; p=reject"]).ok, dmarc_rejects(["v=DMARC1; p=none"]).detail
    (True, 'v=DMARC1; p=none (p=none: failures are delivered)')
    """
    if len(records) != 1:
        return Verdict(False, "no DMARC record" if not records else f"{len(records)} DMARC records (one is allowed)")
    policy = dmarc_tags(records[0]).get("p", "")
    shown = shorten(records[0], 100)
    return (
        Verdict(True, shown) if policy == "reject" else Verdict(False, f"{shown} (p={policy}: failures are delivered)")
    )


def own_mail_passes(found: Sequence[Source], reports: int) -> Verdict:
    """The DMARC reports of the last days say the server's own mail passed; other senders that failed are named
    (a forger, or a service you use and forgot to sign for), but they are DMARC at work, not a fault of the server.

    >>> own_mail_passes([Source("198.51.100.25", 4, 4, 0, ("google.com",), True)], 1)
    Verdict(ok=True, detail='1 report(s): your mail passed (4 messages)')
    >>> own_mail_passes([Source("198.51.100.25", 4, 1, 3, ("google.com",), True)], 1).detail
    'your mail FAILED at google.com: 198.51.100.25 3 of 4 messages'
    """
    if not reports:
        return Verdict(True, "no report in the last days (receivers send them daily once your mail reaches them)")
    ours = [s for s in found if s.yours]
    failing = [s for s in ours if s.failed]
    if failing:
        shown = "; ".join(f"{s.address} {s.failed} of {s.messages} messages" for s in failing[:3])
        return Verdict(False, f"your mail FAILED at {shorten(', '.join(failing[0].reporters), 60)}: {shown}")
    detail = f"{reports} report(s): your mail passed ({sum(s.messages for s in ours)} messages)"
    others = [s for s in found if not s.yours and s.failed]
    if others:
        names = ", ".join(f"{s.address} ({s.failed})" for s in others[:3]) + (" ..." if len(others) > 3 else "")
        detail += f"; others sending as you failed: {names}"
    return Verdict(True, detail)


def senders_reach_over_tls(reports: Sequence[TlsReport]) -> Verdict:
    """The TLS-RPT reports of the last days about a domain say every sender's TLS handshakes with its servers
    succeeded; a failure names its reporter, the policy that failed (DANE's ``tlsa``, at the MX host's name;
    MTA-STS's ``sts``, at the domain's) and why.

    >>> from mailkit.domain.reports import TlsPolicyResult as P
    >>> ok = TlsReport("Google", "1", "", "", (P("sts", "example.org", 12, 0, ()),))
    >>> senders_reach_over_tls([ok])
    Verdict(ok=True, detail='1 report(s): 12 sessions over TLS, none failed (Google)')
    >>> bad = TlsReport("example.net", "2", "", "", (P("tlsa", "mx.example.org", 1, 2, ("validation-failure",)),))
    >>> senders_reach_over_tls([ok, bad]).detail
    'senders FAILED to reach you over TLS: example.net (tlsa mx.example.org): 2 of 3 sessions (validation-failure)'
    """
    policies = [(r.reporter, p) for r in reports for p in r.policies]
    if not policies:
        return Verdict(True, "no TLS-RPT report in the last days (senders that report send them daily)")
    failing = [(who, p) for who, p in policies if p.failed]
    if failing:
        shown = "; ".join(
            f"{who} ({p.kind} {p.domain}): {p.failed} of {p.failed + p.successful} sessions"
            + (f" ({shorten(', '.join(p.failures), 120)})" if p.failures else "")
            for who, p in failing[:3]
        )
        return Verdict(False, f"senders FAILED to reach you over TLS: {shown}")
    reporters = shorten(", ".join(sorted({who for who, _ in policies})), 80)
    sessions = sum(p.successful for _, p in policies)
    return Verdict(True, f"{len(reports)} report(s): {sessions} sessions over TLS, none failed ({reporters})")


def judged_at_receiver(server: str, found: Sequence[tuple[str, str, Mapping[str, str]]] | None, domain: str) -> Verdict:
    """The receiving provider's own ``Authentication-Results`` (``server``: its authserv-id, the topmost header's;
    ``found``: the verdicts of its headers, the topmost first; None: there was none) say SPF, DKIM and DMARC pass for
    mail from ``domain``, with a DKIM signature by ``domain`` itself. Headers with other authserv-ids are left alone:
    anyone on the way could have written them.

    >>> judged_at_receiver("mx.example.net", [("spf", "pass", {}), ("dkim", "pass", {"header.d": "example.org"}),
    ...                                       ("dmarc", "pass", {})], "example.org")
    Verdict(ok=True, detail='mx.example.net: spf=pass, dkim=pass (example.org), dmarc=pass')
    >>> judged_at_receiver("mx.example.net", [("dkim", "pass", {"header.d": "example.net"})], "example.org").detail
    'mx.example.net: spf=none, dkim=none (example.org), dmarc=none'
    >>> judged_at_receiver("", None, "example.org").detail
    'no Authentication-Results in the stored header: this provider does not say'
    """
    if found is None:
        return Verdict(False, "no Authentication-Results in the stored header: this provider does not say")
    first: dict[str, str] = {}
    for method, result, _ in found:
        first.setdefault(method, result)
    signed = any(m == "dkim" and r == "pass" and p.get("header.d", "").lower() == domain.lower() for m, r, p in found)
    dkim = "pass" if signed else next((r for m, r, p in found if m == "dkim" and r != "pass"), "none")
    said = f"spf={first.get('spf', 'none')}, dkim={dkim} ({domain}), dmarc={first.get('dmarc', 'none')}"
    ok = first.get("spf") == "pass" and signed and first.get("dmarc") == "pass"
    return Verdict(ok, shorten(f"{server or '?'}: {said}", 300))


def relay_refused(code: int, text: str) -> Verdict:
    """A stranger's mail for another domain is refused for good (5xx): a 4xx is retried, a 2xx is an open relay."""
    if not code:
        return Verdict(False, text or "no reply")
    if 200 <= code < 300:
        return Verdict(False, f"ACCEPTED ({code}): this server relays for strangers")
    return Verdict(500 <= code < 600, shorten(f"{code} {text}"))


def no_auth_before_tls(offered_before_tls: bool | None, starttls_offered: bool | None = True) -> Verdict:
    """Submission offers STARTTLS, and AUTH only after it: a password never crosses the network in clear.

    >>> no_auth_before_tls(True).detail
    'AUTH offered in clear text'
    """
    if offered_before_tls is None:
        return Verdict(False, "not seen: no EHLO answer")
    if not starttls_offered:
        return Verdict(False, "no STARTTLS offered")
    if offered_before_tls:
        return Verdict(False, "AUTH offered in clear text")
    return Verdict(True, "AUTH only after STARTTLS")


def cleartext_login_refused(capabilities: Sequence[str], answer: Sequence[str] | None = None) -> Verdict:
    """IMAP on 143 announces LOGINDISABLED before STARTTLS, and refuses a login tried anyway (``answer``, when one
    was tried: with a throwaway credential, as a wrong password must not be what refuses it).

    >>> cleartext_login_refused(["IMAP4rev1", "STARTTLS", "LOGINDISABLED"]).ok
    True
    >>> verdict = cleartext_login_refused(["LOGINDISABLED"], ["NO", "[AUTHENTICATIONFAILED] Authentication failed."])
    >>> verdict.ok
    False
    >>> print(verdict.detail)
    LOGINDISABLED advertised, login refused as a wrong password (the cleartext rule did not apply)
    """
    advertised = "LOGINDISABLED" in capabilities
    if answer is None:
        return Verdict(advertised, "LOGINDISABLED" if advertised else "login allowed in clear text")
    status, text = [*answer, "", ""][:2]
    refused = advertised and status != "OK" and "AUTHENTICATIONFAILED" not in text
    said = f"LOGINDISABLED {'advertised' if advertised else 'NOT advertised'}, login {imap_refusal(answer)}"
    return Verdict(refused, said)


def imap_refusal(answer: Sequence[str]) -> str:
    """How an IMAP server answered a cleartext login, in words stable across Dovecot versions.

    >>> imap_refusal(["NO", "[PRIVACYREQUIRED] Plaintext authentication disallowed"])
    'refused'
    """
    status, text = [*answer, "", ""][:2]
    if status == "OK":
        return "ACCEPTED"
    if status == "SKIPPED":
        return "not tried"
    if "AUTHENTICATIONFAILED" in text:
        return "refused as a wrong password (the cleartext rule did not apply)"
    return "refused"


def role_accepts(code: int, text: str) -> Verdict:
    """A role address (:data:`REQUIRED_ROLES`) takes mail: RCPT TO answered 250.

    >>> role_accepts(550, "5.1.1 <abuse@example.org>: Recipient address rejected: User unknown").ok
    False
    """
    return Verdict(code == 250, shorten(f"{code} {text}"))


def outbound_open(host: str, port: int, greeting: str) -> Verdict:
    """The server can open ``port`` to another mail server (many providers block port 25 on new accounts).

    >>> outbound_open("outside.example.net", 25, "220 outside.example.net ESMTP Postfix (Debian)").detail
    'outside.example.net:25 greeted with 220'
    >>> outbound_open("outside.example.net", 25, "")
    Verdict(ok=False, detail='no greeting from outside.example.net:25 in 8 s')
    """
    if greeting.startswith("220"):  # the code only: the name and software it gives differ by host and release
        return Verdict(True, f"{host}:{port} greeted with 220")
    return Verdict(False, f"no greeting from {host}:{port} in 8 s")


def relay_login(reasons: Sequence[str]) -> Verdict:
    """No message waits because the relay refused the server's login (a wrong relay password: mail is deferred,
    never bounced, and waits here until the password is right).

    >>> relay_login(["SASL authentication failed; server relay.example.net[198.51.100.68] said: 535 5.7.8 failed"]).ok
    False
    """
    refused = [r for r in reasons if "SASL authentication failed" in r or "authentication failed" in r.lower()]
    if refused:
        said = refused[0].split(" said: ", 1)[-1]  # the relay's own words (its 535 reply)
        return Verdict(False, shorten(f"{len(refused)} waiting, the relay refused the login: {said}"))
    return Verdict(True, "no message waits for a login at the relay")


def ports_open(family: int, ports: Sequence[int], states: Mapping[tuple[int, int], str]) -> Verdict:
    """Every port the server serves answers from outside on this address family (the firewall lets it through).

    >>> ports_open(4, [25, 587], {(4, 25): "open", (4, 587): "filtered"})
    Verdict(ok=False, detail='IPv4: 587 filtered')
    >>> ports_open(6, [25], {(6, 25): "open"}).detail
    'IPv6: 25 open'
    """
    wrong = [f"{p} {states.get((family, p), 'not probed')}" for p in ports if states.get((family, p)) != "open"]
    if wrong:
        return Verdict(False, f"IPv{family}: {', '.join(wrong)}")
    return Verdict(True, f"IPv{family}: {', '.join(map(str, ports))} open")


def ports_filtered(family: int, ports: Sequence[int], states: Mapping[tuple[int, int], str]) -> Verdict:
    """Ports the server does not serve give no answer at all on this family: a firewall drops what it does not
    serve ("refused" means the packets reached the host: nothing listens there now, nothing stops a service that
    starts listening by mistake).

    >>> ports_filtered(4, [23, 3306], {(4, 23): "filtered", (4, 3306): "refused"})
    Verdict(ok=False, detail='IPv4: 3306 refused (not filtered)')
    """
    wrong = [p for p in ports if states.get((family, p)) != "filtered"]
    if wrong:
        said = ", ".join(f"{p} {states.get((family, p), 'not probed')}" for p in wrong)
        return Verdict(False, f"IPv{family}: {said} (not filtered)")
    return Verdict(True, f"IPv{family}: {', '.join(map(str, ports))} no answer")


def ports_let_through(family: int, ports: Sequence[int], states: Mapping[tuple[int, int], str]) -> Verdict:
    """Ports the firewall opens for a program that listens only now and then (certbot's HTTP-01 challenge on 80):
    packets reach the server, answered or refused, never dropped.

    >>> ports_let_through(4, [80], {(4, 80): "refused"})
    Verdict(ok=True, detail='IPv4: 80 refused (reaches the server; refused: nothing listens between renewals)')
    >>> ports_let_through(6, [80], {(6, 80): "filtered"}).ok
    False
    """
    wrong = [p for p in ports if states.get((family, p)) not in ("open", "refused")]
    if wrong:
        said = ", ".join(f"{p} {states.get((family, p), 'not probed')}" for p in wrong)
        return Verdict(False, f"IPv{family}: {said}")
    seen = ", ".join(f"{p} {states[(family, p)]}" for p in ports)
    return Verdict(True, f"IPv{family}: {seen} (reaches the server; refused: nothing listens between renewals)")


def guessers_banned(bans: Bans, jails: Sequence[str]) -> Verdict:
    """fail2ban answers, and runs every jail the guide sets up, each with a status that reads.

    >>> from mailkit.server.bans import Bans
    >>> guessers_banned(Bans(error="fail2ban-client status: Is fail2ban running?"), ["dovecot"])
    Verdict(ok=False, detail='fail2ban-client status: Is fail2ban running?')
    >>> guessers_banned(Bans(("sshd",), {}), ["dovecot", "postfix-sasl"]).detail
    'no jail dovecot, postfix-sasl (running: sshd)'
    """
    if bans.error:
        return Verdict(False, bans.error)
    missing = [j for j in jails if j not in bans.jails]
    if missing:
        return Verdict(False, f"no jail {', '.join(missing)} (running: {', '.join(bans.jails) or 'none'})")
    unreadable = [j for j in jails if bans.status.get(j) is None]
    if unreadable:
        return Verdict(False, f"the status of {', '.join(unreadable)} does not read as fail2ban's")
    return Verdict(True, f"jails {', '.join(jails)} active")


def banned_now(bans: Bans, shown: int = 5) -> Verdict:
    """The addresses banned now, with their jails: any number is fine, a ban list that cannot be read is not.

    >>> from mailkit.server.bans import Bans, JailStatus
    >>> banned_now(Bans(("dovecot",), {"dovecot": JailStatus(0, 7, 1, 1, ("198.51.100.69",))}))
    Verdict(ok=True, detail='1 address: 198.51.100.69 (dovecot)')
    >>> banned_now(Bans(("dovecot",), {"dovecot": None})).ok
    False
    """
    if bans.error:
        return Verdict(False, f"cannot read the ban list: {bans.error}")
    unreadable = [j for j, status in bans.status.items() if status is None]
    if unreadable:
        return Verdict(False, f"cannot read the ban list of {', '.join(unreadable)}")
    banned = bans.banned
    if not banned:
        return Verdict(True, "none")
    listed = ", ".join(f"{a} ({', '.join(jails)})" for a, jails in list(banned.items())[:shown])
    more = f" and {len(banned) - shown} more" if len(banned) > shown else ""
    return Verdict(True, f"{len(banned)} address{'es' if len(banned) > 1 else ''}: {listed}{more}")


#: A nightly backup older than this is a failure (a day, and the timer's random delay, and some slack).
BACKUP_MAX_HOURS = 26


def backup_timer(enabled: str, active: str) -> Verdict:
    """The nightly backup's timer is enabled (it survives a reboot) and active (it waits for the next night).

    >>> backup_timer("disabled", "inactive")
    Verdict(ok=False, detail='mailkit-backup.timer disabled, inactive')
    """
    return Verdict(
        enabled == "enabled" and active == "active", f"mailkit-backup.timer {enabled or 'missing'}, {active}"
    )


def backup_result(result: str, status: str) -> Verdict:
    """The last backup ended well: systemd's result ``success`` and exit status 0 (borg's warnings are 1, which the
    backup script accepts, so the service still succeeds).

    >>> backup_result("exit-code", "2").detail
    'result exit-code, exit 2: journalctl -u mailkit-backup says why'
    """
    ok = result == "success" and status == "0"
    detail = f"result {result or '?'}, exit {status or '?'}"
    return Verdict(ok, detail if ok else detail + ": journalctl -u mailkit-backup says why")


def backup_age(hours: float | None, last_failed: bool = False) -> Verdict:
    """The newest backup is less than :data:`BACKUP_MAX_HOURS` old (None: none known; ``last_failed``: because
    the last run failed).

    >>> backup_age(30.2), backup_age(None).ok, backup_age(None, last_failed=True).detail
    (Verdict(ok=False, detail='30 h old'), False, 'the last run failed: no new backup')
    """
    if hours is None:
        return Verdict(False, "the last run failed: no new backup" if last_failed else "no backup yet")
    return Verdict(hours < BACKUP_MAX_HOURS, f"{hours:.0f} h old")
