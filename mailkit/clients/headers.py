"""A header explainer for teaching: a received message's trace and authentication headers in plain words.

>>> raw = b"Received: from mail.example.org (mail.example.org [198.51.100.25])\\r\\n" \\
...       b"\\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\\r\\n" \\
...       b"\\tby outside.example.net (Postfix) with ESMTPS id 1; Wed, 25 Nov 2026 14:00:00 +0000\\r\\n" \\
...       b"Authentication-Results: outside.example.net; spf=pass smtp.mailfrom=example.org\\r\\n\\r\\nbody\\r\\n"
>>> for row in explain(raw).rows:
...     print(row.says)
outside.example.net got it from mail.example.org [198.51.100.25] with ESMTPS (SMTP over TLS), TLSv1.3
outside.example.net says: SPF pass (the sending host may send for example.org)
"""

from __future__ import annotations

import email
import email.policy
import html
import re
from dataclasses import dataclass
from typing import Any

RESULTS = {
    "pass": "passed",
    "fail": "FAILED",
    "softfail": "failed softly (~all)",
    "neutral": "neutral (no statement)",
    "none": "none (nothing to check)",
    "temperror": "a temporary error",
    "permerror": "a permanent error (a broken record)",
    "policy": "refused by local policy",
}
DKIM_TAGS = {
    "v": "version",
    "a": "algorithm",
    "c": "canonicalization (header/body)",
    "d": "signing domain (DMARC compares it with From:)",
    "s": "selector: the key is at <s>._domainkey.<d>",
    "h": "signed header fields",
    "bh": "hash of the body",
    "b": "the signature",
    "t": "signed at (Unix time)",
    "x": "expires at (Unix time)",
    "i": "identity of the signer",
    "l": "body length signed",
}


@dataclass(frozen=True)
class Row:
    header: str
    says: str


@dataclass(frozen=True)
class Explained:
    """The rows of an explanation; text in a terminal, a table in a notebook."""

    rows: tuple[Row, ...]

    def __str__(self) -> str:
        width = max((len(r.header) for r in self.rows), default=0)
        return "\n".join(f"{r.header:<{width}}  {r.says}" for r in self.rows)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        body = "".join(f"<tr><td>{html.escape(r.header)}</td><td>{html.escape(r.says)}</td></tr>" for r in self.rows)
        return f"<table><tr><th>header</th><th>in plain words</th></tr>{body}</table>"


def _received(text: str) -> str:
    sender = re.match(r"from\s+(\S+)(?:\s+\((\S+)\s+(\[[^\]]+\])\))?", text)
    by = re.search(r"\bby\s+(\S+)", text)
    protocol = re.search(r"\bwith\s+(\S+)", text[by.end() :]) if by else None  # not TLS's "with cipher"
    if by and not protocol:
        return f"{by[1]} made it itself (handed to its sendmail command, as cron and 'mail' do)"
    if not by or not protocol:
        return "a hop this explainer cannot read: " + text[:80]
    origin = f"{sender[2]} {sender[3]}" if sender and sender[3] else sender[1] if sender else "this host itself"
    tls = re.search(r"using (TLSv[\d.]+)", text)
    kinds = {"ESMTPSA": "SMTP over TLS, sender logged in", "ESMTPS": "SMTP over TLS", "LMTPS": "LMTP over TLS"}
    kind = kinds.get(protocol[1].upper(), "TLS" if tls else "no TLS")
    said = f"{by[1]} got it from {origin} with {protocol[1]} ({kind})"
    return said + (f", {tls[1]}" if tls else "")


def verdicts(value: str) -> tuple[str, list[tuple[str, str, dict[str, str]]]]:
    """One Authentication-Results header: its authserv-id and each ``(method, result, properties)``.

    >>> verdicts("mx.example.net; dkim=pass (2048-bit key; unprotected) header.d=example.org header.s=s1")
    ('mx.example.net', [('dkim', 'pass', {'header.d': 'example.org', 'header.s': 's1'})])
    """
    text = re.sub(r"\([^()]*\)", " ", " ".join(value.split()))  # comments may hold ';'
    server, _, rest = text.partition(";")
    found = []
    for part in rest.split(";"):
        method, _, tail = part.strip().partition("=")
        if method and tail:
            properties = dict(re.findall(r"([a-z]+\.[\w-]+)=(\S+)", tail))
            found.append((method.strip(), tail.split()[0], properties))
    return server.strip(), found


def _authentication_results(text: str) -> list[str]:
    server, found = verdicts(text)
    said = []
    for method, result, props in found:
        if method == "spf":
            domain = props.get("smtp.mailfrom", "?").split("@")[-1]
            why = f"the sending host {'may' if result == 'pass' else 'may NOT'} send for {domain}"
        elif method == "dkim":
            signer = f"signature by {props.get('header.d')} (selector {props.get('header.s', '?')})"
            why = signer if "header.d" in props else "no signature"
        elif method == "dmarc":
            aligned = "aligned with a passing SPF or DKIM" if result == "pass" else "has no aligned pass"
            why = f"From: {props.get('header.from', '?')} {aligned}"
        else:
            said.append(f"{server} says: {method.upper()} {RESULTS.get(result, result)}")
            continue
        said.append(f"{server} says: {method.upper()} {result} ({why})")
    return said


def _dkim_signature(text: str) -> str:
    tags = dict(
        (k.strip(), v.strip()) for k, _, v in (t.partition("=") for t in re.sub(r"\s+", "", text).split(";")) if k
    )
    shown = []
    for tag in ("d", "s", "a", "c"):
        if tag in tags:
            shown.append(f"{tag}={tags[tag]} ({DKIM_TAGS[tag]})")
    return "; ".join(shown)


def explain(raw: bytes) -> Explained:
    """Explain ``raw``'s Received chain (newest first), Authentication-Results and DKIM-Signature."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    rows = []
    received = message.get_all("Received", [])
    for number, value in enumerate(received, 1):
        label = f"Received (hop {number}{', newest' if number == 1 else ''})"
        rows.append(Row(label, _received(" ".join(str(value).split()))))
    for value in message.get_all("Authentication-Results", []):
        rows += [Row("Authentication-Results", s) for s in _authentication_results(" ".join(str(value).split()))]
    for value in message.get_all("DKIM-Signature", []):
        rows.append(Row("DKIM-Signature", _dkim_signature(str(value))))
    return Explained(tuple(rows))
