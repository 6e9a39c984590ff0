"""Keeping secrets out of diffs and outputs: password hashes, passwords and private keys are replaced.

>>> redact("alice@example.org:{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA::5000:5000::")
'alice@example.org:{ARGON2ID}<redacted>::5000:5000::'
>>> redact('password = "hunter2";  # rspamd controller')
'password = "<redacted>";  # rspamd controller'
>>> redact("connect = host=db.example.org dbname=mail password=hunter2 user=mail")
'connect = host=db.example.org dbname=mail password=<redacted> user=mail'

Sieve's match variables are not password schemes:

>>> redact('fileinto "${1}";')
'fileinto "${1}";'
"""

from __future__ import annotations

import re

REDACTED = "<redacted>"
#: A relay's address as Postfix's SASL maps key it: ``[relay.example.net]:587`` or ``relay.example.net:587``.
_RELAY = r"(?:\[[A-Za-z0-9.-]+\](?::\d+)?|[A-Za-z0-9.-]+:\d+)"
#: Setting names whose value is a secret: ``password``, ``smtp_sasl_password``, ``passwd``, ``secret``, ``api_key``...
#: (never ``..._maps`` or ``..._file``: those name where a secret is, and that is worth seeing).
_SECRET_NAME = r"[\w.-]*(?:password|passwd|secret|api_key|apikey|token)"
_VALUE = r"\"[^\"\n]*\"|'[^'\n]*'|[^\s;,\"']+"
_PATTERNS = [
    # PEM private keys (any algorithm), whole block.
    (
        re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.S),
        "<redacted private key>",
    ),
    # name = value anywhere (also inside connect strings: password=...), the value quoted or not.
    (re.compile(rf"(\b{_SECRET_NAME}\s*=\s*)({_VALUE})", re.I), lambda m: m[1] + _quoted_like(m[2])),
    # name: value at the start of a line (YAML, headers); not prose that merely says "password:".
    (re.compile(rf"^([-+ ]?\s*{_SECRET_NAME}:\s*)({_VALUE})$", re.I | re.M), lambda m: m[1] + _quoted_like(m[2])),
    # Dovecot-style {SCHEME}hash, also {PLAIN}secret and {SHA256.b64}... (any case); not Sieve's ${1}, ${name}.
    (re.compile(r"(?<![$\w])(\{[A-Za-z][A-Za-z0-9._-]*\})[^\s:]+"), r"\1" + REDACTED),
    # sasl_passwd lines: "[relay.example.net]:587 user:password".
    (re.compile(rf"^([-+ ]?\s*{_RELAY}\s+[^\s:]+:)\S+", re.M), r"\1" + REDACTED),
    # Inline SASL maps: "inline:{ [relay.example.net]:587 = user:password }".
    (re.compile(rf"({_RELAY}\s*=\s*[^\s:,{{}}]+:)[^\s,{{}}]+"), r"\1" + REDACTED),
    # crypt(3) hashes: $1$, $5$, $6$, $2b$, $y$, $argon2id$...
    (re.compile(r"\$(?:1|2[aby]?|5|6|y|gy|7|argon2(?:id|i|d))\$[^\s:\"']+"), REDACTED),
    # TSIG-style secrets: secret "...".
    (re.compile(r'(secret\s+")[^"]+(")', re.I), r"\1" + REDACTED + r"\2"),
    # Spamhaus DQS keys live in the zone names they query: <key>.zen.dq.spamhaus.net.
    (re.compile(r"\b[a-z0-9]{20,}(?=\.[a-z.]*dq\.spamhaus\.net)", re.I), REDACTED),
]


def _quoted_like(value: str) -> str:
    if value[:1] in "\"'" and len(value) >= 2:
        return value[0] + REDACTED + value[-1]
    return REDACTED if value != REDACTED else value


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)  # type: ignore[call-overload]
    return text
