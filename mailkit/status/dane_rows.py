"""``mailkit check``'s DANE rows: the mail host's TLSA records, proven by DNSSEC, naming the key it serves on port 25,
with a second key published for the next one (:mod:`mailkit.domain.tlsa`).

>>> [(r.name, r.ok) for r in tlsa_rows("mail.example.org", None, None, "")]
[]
"""

from __future__ import annotations

from typing import Any

from mailkit.core.errors import MailkitError
from mailkit.core.ssh import Connection
from mailkit.core.values import ValueRejected
from mailkit.domain.dnssec import Ask, answer_texts, validate
from mailkit.domain.tlsa import judge, tlsa_name
from mailkit.guide.dane_checks import OWN_RESOLVER_FIX, SECTION, finger
from mailkit.status.rows import Row

FIX = SECTION


def tlsa_rows(hostname: str, keys: dict[str, Any] | None, ask: Ask | None, anchor: str) -> list[Row]:
    """The TLSA rows of ``hostname``; ``keys``: what the probe read of the key served on port 25 (None: not
    reached, its port rows say why); ``ask``: the resolver asked for signatures (None: no DNSSEC rows, none here)."""
    if ask is None:
        return []
    name = tlsa_name(hostname)
    served = f"TLSA of {hostname} names the key it serves on 25 (DANE)"
    try:
        records = answer_texts(ask, name, "TLSA")
        if not records:
            detail = f"no TLSA at {name}: senders cannot insist on TLS with your server, nor check its key"
            return [Row("dane", served, False, detail, f"{FIX}: publish the TLSA records of your keys", part=3)]
        chain = validate(name, "TLSA", ask, anchor)
    except MailkitError as exc:
        return [Row("dane", served, False, f"cannot tell: {exc}", "check the resolver (--nameserver)", part=3)]
    if chain.state != "secure":
        said = {"insecure": "not signed, so senders ignore it: ", "bogus": "BOGUS (senders defer your mail): "}
        fix = f"{FIX}: TLSA counts only in a signed zone (see the dnssec rows)"
        return [Row("dane", served, False, said.get(chain.state, "") + chain.detail, fix, part=3)]
    if not keys or "spki_sha256" not in keys:
        return [Row("dane", served, False, "cannot tell: the key served on 25 was not read", FIX, part=3)]
    try:
        verdict = judge(records, str(keys["spki_sha256"]), str(keys.get("cert_sha256", "")))
    except ValueRejected as exc:
        return [Row("dane", served, False, str(exc), f"{FIX}: publish the TLSA records the plan shows", part=3)]
    fix = f"{FIX}: publish a 3 1 1 record of the key the server serves (its certificate's key), before serving it"
    rollover_fix = f"{FIX}: publish the next key's record now, long before the key changes"
    return [
        Row("dane", served, verdict.matches, verdict.detail, fix, part=3),
        Row("dane", f"TLSA of {hostname}: the next key published (rollover)", verdict.next_key,
            verdict.rollover_detail, rollover_fix, part=3),
    ]  # fmt: skip


def own_resolver_row(conn: Connection, domain: str) -> Row:
    """Postfix's own DANE client on the server (``posttls-finger -l dane``: it resolves through the server's resolver
    exactly as Postfix's smtp client does) verifies the server of ``domain`` by its TLSA records: the proof that the
    resolver validates, which Postfix needs to send by DANE at all (it asks without validating otherwise, silently).
    It connects to port 25 and says EHLO, STARTTLS and QUIT: nothing is sent."""
    verified, said = finger(conn, domain)
    name = f"Postfix on the server verifies {domain} by DANE (its own resolver)"
    return Row("dane", name, verified, said, OWN_RESOLVER_FIX, part=3)
