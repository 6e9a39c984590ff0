"""An inventory of one IMAP account, taken as a mail program sees it, run on another host with ``python3`` and its
standard library only.

The request arrives as JSON on standard input (the password with it, never on a command line): the server's name,
its port (IMAP over TLS from the first byte, verified against this host's trust store and the name), the user and
password, bounds (folders, messages, seconds), and optionally ``only``: the folders to read (all when absent). The
answer, as JSON on standard output: the hierarchy separator, and per folder (its name decoded from IMAP's modified
UTF-7) its special-use flags and one entry per message: its UID, the ``Message-ID``, a SHA-256 of the body (line ends
made LF, so a server that stores LF and one that stores CRLF agree), the flags (``\\Recent`` left out: it says which
session saw the message first, not anything about it) and the size. A server is not trusted: a folder or message
past the bounds is an error in the answer, not a hang.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import imaplib
import json
import re
import ssl
import sys
import time
from typing import Any

_LIST = re.compile(rb'^\((?P<flags>[^)]*)\) (?P<sep>"(?:[^"\\]|\\.)*"|NIL) (?P<name>.+)$')
_SPECIAL_USE = {"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"}
BATCH = 50


def decode_mutf7(name: str) -> str:
    """IMAP's modified UTF-7 (RFC 3501 5.1.3) to Unicode: ``Fam&AO0-lia`` is ``Família``."""
    out, i = [], 0
    while i < len(name):
        if name[i] != "&":
            out.append(name[i])
            i += 1
            continue
        end = name.index("-", i)
        chunk = name[i + 1 : end]
        if not chunk:
            out.append("&")
        else:
            data = chunk.replace(",", "/")
            out.append(base64.b64decode(data + "=" * (-len(data) % 4)).decode("utf-16-be"))
        i = end + 1
    return "".join(out)


def quote(name: str) -> str:
    """A mailbox name as an IMAP quoted string (modified UTF-7 names are ASCII)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unquote(raw: bytes) -> str:
    text = raw.decode("ascii", errors="replace")
    if text.startswith('"') and text.endswith('"'):
        text = re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def folders(imap: imaplib.IMAP4, limit: int) -> tuple[str, list[tuple[str, list[str]]]]:
    """The separator, and each selectable folder's raw name and special-use flags."""
    typ, lines = imap.list()
    if typ != "OK":
        raise RuntimeError(f"LIST failed: {lines!r}")
    separator, found = "/", []
    for item in lines:
        if isinstance(item, tuple):  # a name sent as a literal: the line, then the literal
            head, literal = item
            line = head.rsplit(b"{", 1)[0] + b'"' + literal.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
        elif item is None:
            continue
        else:
            line = item
        match = _LIST.match(line)
        if not match:
            raise RuntimeError(f"a LIST line this program does not understand: {line[:200]!r}")
        flags = match.group("flags").decode(errors="replace").split()
        if match.group("sep") != b"NIL":
            separator = unquote(match.group("sep"))
        if any(flag.lower() == "\\noselect" or flag.lower() == "\\nonexistent" for flag in flags):
            continue
        found.append((unquote(match.group("name")), sorted(f for f in flags if f in _SPECIAL_USE)))
        if len(found) > limit:
            raise RuntimeError(f"more than {limit} folders")
    return separator, found


def _message_id(header: bytes) -> str:
    match = re.search(rb"^Message-ID:\s*(.*?)\s*$", header.replace(b"\r\n", b"\n"), re.MULTILINE | re.IGNORECASE)
    return match.group(1).decode(errors="replace")[:300] if match else ""


def messages(imap: imaplib.IMAP4, raw_name: str, limit: int, deadline: float) -> list[dict[str, Any]]:
    """One entry per message of a folder, in UID order."""
    typ, data = imap.select(quote(raw_name), readonly=True)
    if typ != "OK":
        raise RuntimeError(f"SELECT {raw_name} failed: {data!r}")
    typ, data = imap.uid("SEARCH", "ALL")
    uids = data[0].split() if typ == "OK" and data and data[0] else []
    if len(uids) > limit:
        raise RuntimeError(f"{raw_name}: more than {limit} messages")
    entries = []
    for start in range(0, len(uids), BATCH):
        if time.monotonic() > deadline:
            raise RuntimeError("the inventory took longer than its time limit")
        chunk = b",".join(uids[start : start + BATCH]).decode()
        typ, data = imap.uid(
            "FETCH", chunk, "(FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)] BODY.PEEK[TEXT])"
        )
        if typ != "OK":
            raise RuntimeError(f"FETCH in {raw_name} failed: {data!r}")
        parts: list[bytes] = []
        for item in data:
            if isinstance(item, tuple):
                parts += [item[0], item[1]]
            elif item and item != b")":
                parts.append(item)
        entries += _entries(parts)
    return entries


def _entries(parts: list[bytes]) -> list[dict[str, Any]]:
    """FETCH responses (each ``N (UID .. FLAGS (..) .. BODY[..] {n}``, literal, ...) as entries."""
    entries: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    i = 0
    while i < len(parts):
        head = parts[i]
        if re.match(rb"^\d+ \(", head):
            current = {"uid": 0, "message_id": "", "body_sha256": "", "flags": [], "size": 0}
            entries.append(current)
        if current is None:
            i += 1
            continue
        flags = re.search(rb"FLAGS \(([^)]*)\)", head)
        if flags:
            current["flags"] = sorted(f for f in flags.group(1).decode().split() if f != "\\Recent")
        uid = re.search(rb"UID (\d+)", head)
        if uid:
            current["uid"] = int(uid.group(1))
        size = re.search(rb"RFC822\.SIZE (\d+)", head)
        if size:
            current["size"] = int(size.group(1))
        if head.rstrip().endswith(b"}") and i + 1 < len(parts):
            literal = parts[i + 1]
            if b"BODY[HEADER.FIELDS" in head:
                current["message_id"] = _message_id(literal)
            elif b"BODY[TEXT]" in head:
                current["body_sha256"] = hashlib.sha256(literal.replace(b"\r\n", b"\n")).hexdigest()
            i += 2
            continue
        i += 1
    return entries


def main() -> None:
    request = json.load(sys.stdin)
    deadline = time.monotonic() + float(request.get("seconds", 600))
    answer: dict[str, Any] = {"ok": False}
    try:
        context = ssl.create_default_context()
        imap = imaplib.IMAP4_SSL(request["host"], int(request.get("port", 993)), ssl_context=context, timeout=30)
        try:
            imap.login(request["user"], request["password"])
            separator, found = folders(imap, int(request.get("max_folders", 1000)))
            inventory = {}
            only = request.get("only")
            for raw_name, special_use in found:
                if only is not None and decode_mutf7(raw_name) not in only:
                    continue
                entries = messages(imap, raw_name, int(request.get("max_messages", 200_000)), deadline)
                inventory[decode_mutf7(raw_name)] = {"special_use": special_use, "messages": entries}
            answer = {"ok": True, "separator": separator, "folders": inventory}
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                imap.logout()
    except (imaplib.IMAP4.error, OSError, RuntimeError, ValueError, KeyError) as exc:
        answer = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
