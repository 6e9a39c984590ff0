"""Mailbox names as IMAP servers store and send them: modified UTF-7 (RFC 3501 5.1.3).

>>> mutf7("Família"), mutf7("日本語"), mutf7("A&B")
('Fam&AO0-lia', '&ZeVnLIqe-', 'A&-B')
"""

from __future__ import annotations

import base64


def mutf7(name: str) -> str:
    """``name`` in modified UTF-7: printable ASCII as itself (``&`` as ``&-``), the rest base64 of UTF-16."""
    out, pending = [], ""

    def flush() -> None:
        nonlocal pending
        if pending:
            encoded = base64.b64encode(pending.encode("utf-16-be")).decode().rstrip("=").replace("/", ",")
            out.append(f"&{encoded}-")
            pending = ""

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending += char
    flush()
    return "".join(out)
