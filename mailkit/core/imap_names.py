"""Mailbox names as IMAP servers store and send them: modified UTF-7 (RFC 3501 5.1.3), and the name a folder
from elsewhere gets on this server.

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


#: What stands at home for a character a folder's name cannot hold here: Maildir++ keeps ``.`` between levels on
#: disk, so a provider's label ``Releases.2024`` (one folder, as Gmail allows) comes home as ``Releases_2024``
#: (dsync's ``dsync_alt_char``, which moving in sets to this; a Takeout import files such a label the same way).
ALT_CHAR = "_"


def home_name(folder: str) -> str:
    """The name a provider's folder has at home: every ``.`` in it becomes :data:`ALT_CHAR`.

    >>> home_name("Releases.2024/Q1"), home_name("Work/Projects")
    ('Releases_2024/Q1', 'Work/Projects')
    """
    return folder.replace(".", ALT_CHAR)
