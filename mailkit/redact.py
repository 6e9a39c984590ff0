"""Keeping secrets out of diffs and outputs: password hashes and private keys are replaced.

>>> redact("alice@example.org:{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA::5000:5000::")
'alice@example.org:{ARGON2ID}<redacted>::5000:5000::'
"""

from __future__ import annotations

import re

REDACTED = "<redacted>"
_PATTERNS = [
    # PEM private keys (any algorithm), whole block.
    (
        re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.S),
        "<redacted private key>",
    ),
    # Dovecot-style {SCHEME}hash, also {PLAIN}secret and {SHA256.b64}... (any case).
    (re.compile(r"(\{[A-Za-z0-9][A-Za-z0-9._-]*\})[^\s:]+"), r"\1" + REDACTED),
    # sasl_passwd lines: "[relay.example.net]:587 user:password".
    (
        re.compile(r"^([-+ ]?\s*(?:\[[A-Za-z0-9.-]+\](?::\d+)?|[A-Za-z0-9.-]+:\d+)\s+[^\s:]+:)\S+", re.M),
        r"\1" + REDACTED,
    ),
    # crypt(3) hashes: $1$, $5$, $6$, $2b$, $y$, $argon2id$...
    (re.compile(r"\$(?:1|2[aby]?|5|6|y|gy|7|argon2(?:id|i|d))\$[^\s:]+"), REDACTED),
    # DKIM/TSIG-style secrets in key = "..." settings.
    (re.compile(r'(secret\s+")[^"]+(")', re.I), r"\1" + REDACTED + r"\2"),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
