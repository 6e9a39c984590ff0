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
    # Dovecot-style {SCHEME}hash.
    (re.compile(r"(\{[A-Z0-9][A-Z0-9.-]*\})[^\s:]+"), r"\1" + REDACTED),
    # crypt(3) hashes: $1$, $5$, $6$, $2b$, $y$, $argon2id$...
    (re.compile(r"\$(?:1|2[aby]?|5|6|y|gy|7|argon2(?:id|i|d))\$[^\s:]+"), REDACTED),
    # DKIM/TSIG-style secrets in key = "..." settings.
    (re.compile(r'(secret\s+")[^"]+(")', re.I), r"\1" + REDACTED + r"\2"),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
