"""Text seen on another host, made fit to show: one line, no control characters, cut with a visible mark.

>>> shorten("554 5.7.1 Service unavailable; Client host [198.51.100.9] blocked using bl.example.net", 40)
'554 5.7.1 Service unavailable; Client...'
>>> shorten("\\x1b[31mred\\x1b[0m\\nnext line")
'[31mred [0m next line'
"""

from __future__ import annotations

#: How long a server's reply may be in a check's "seen" column; longer ones are cut with a mark.
REPLY_CHARS = 90


def shorten(text: str, limit: int = REPLY_CHARS) -> str:
    """``text`` on one line, control characters (a terminal's escape sequences) made spaces, cut at ``limit``
    characters with a visible mark."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."
