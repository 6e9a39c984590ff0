"""Validated values: what a user gives is checked before it reaches a config file or a command.

Each type refuses anything that could break out of its place (newlines, separators, quotes, NUL,
over-long labels, non-ASCII without IDNA) with an error that names the field.

>>> Domain("Example.ORG")
Domain('example.org')
>>> EmailAddress("Postmaster@example.org")
EmailAddress('postmaster@example.org')
>>> Domain("bad domain.org", field="mydomain")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
mailkit.core.values.ValueRejected: mydomain: 'bad domain.org' is not a valid domain name: label 'bad domain' may hold...
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from mailkit.core.errors import UsageError

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_LOCAL_PART = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
_PATH_PART = re.compile(r"[A-Za-z0-9._+-]+")
# '-' only inside: Postfix names per-service parameters after master.cf services (policyd-spf_time_limit).
# Upper case too: smtp_tls_CApath, smtpd_tls_CAfile.
_PARAM_NAME = re.compile(r"[a-z](?:[A-Za-z0-9_-]{0,98}[A-Za-z0-9_])?")
_FORBIDDEN_IN_SETTING = {"\n": "a newline", "\r": "a carriage return", "\0": "a NUL byte"}


def _control_character(text: str) -> str | None:
    """The name of the first control character or line/paragraph separator in ``text``, if any."""
    for char in text:
        if char in _FORBIDDEN_IN_SETTING:
            return _FORBIDDEN_IN_SETTING[char]
        if unicodedata.category(char) in ("Cc", "Zl", "Zp") and char != "\t":
            return f"a control character (U+{ord(char):04X})"
    return None


class ValueRejected(UsageError):
    """A value that cannot be used where it was given; the message names the field."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field, self.value, self.reason = field, value, reason
        super().__init__(f"{field}: {_show(value)} {reason}")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "...'"


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ValueRejected(field, value, f"must be text, not {type(value).__name__}")
    return value


def _idna2008_hint(text: str) -> str:
    try:
        import idna

        return f" ({idna.encode(text, uts46=True).decode()})"
    except Exception:
        return " (xn--...)"


class Domain(str):
    """A DNS domain name with at least two labels, in ASCII (IDNA applied), lower case, no trailing dot."""

    kind = "domain name"

    def __new__(cls, value: Any, *, field: str | None = None) -> Domain:
        field = field or cls.kind
        text = _text(value, field)
        return super().__new__(cls, cls._check(text, field))

    @classmethod
    def _check(cls, text: str, field: str) -> str:
        def reject(why: str) -> ValueRejected:
            return ValueRejected(field, text, f"is not a valid {cls.kind}: {why}")

        if not text:
            raise reject("it is empty")
        if text.endswith("."):
            raise reject("drop the trailing dot")
        if not text.isascii():
            # Never rewritten silently: Python's "idna" codec is IDNA 2003, which maps straße.de to
            # strasse.de, another domain. Ask for the IDNA 2008 form, and show it when we can.
            raise reject(f"it is not ASCII: write its IDNA 2008 form{_idna2008_hint(text)}")
        name = text.lower()
        if len(name) > 253:
            raise reject(f"it is {len(name)} characters long (at most 253)")
        labels = name.split(".")
        for label in labels:
            if not label:
                raise reject("it has an empty label (two dots in a row?)")
            if len(label) > 63:
                raise reject(f"label {label[:20]!r}... is {len(label)} characters long (at most 63)")
            if not _LABEL.fullmatch(label):
                if label.startswith("-") or label.endswith("-"):
                    raise reject(f"label {label!r} may not start or end with '-'")
                raise reject(f"label {label!r} may hold only letters, digits and '-'")
        if len(labels) < 2:
            raise reject("it needs at least two labels, like example.org")
        if labels[-1].isdigit():
            raise reject("the last label is numeric (an IP address is not a domain name)")
        return name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class Hostname(Domain):
    """A fully qualified host name, such as ``mail.example.org``."""

    kind = "host name"


class LocalPart(str):
    """The part of an address before ``@``: lower case letters, digits, '.', '_' and '-' only.

    Deliberately narrower than RFC 5321: it becomes a directory name and a key in flat-file maps, and
    '+' is the recipient delimiter.
    """

    def __new__(cls, value: Any, *, field: str = "local part") -> LocalPart:
        text = _text(value, field)
        name = text.lower()
        if not name:
            raise ValueRejected(field, text, "is empty")
        if len(name) > 64:
            raise ValueRejected(field, text, f"is {len(name)} characters long (at most 64)")
        if "+" in name:
            raise ValueRejected(field, text, "contains '+', the recipient delimiter (user+tag reaches user)")
        if ".." in name or not _LOCAL_PART.fullmatch(name):
            raise ValueRejected(
                field,
                text,
                "may hold only letters, digits, '.', '_' and '-', starting and ending with a letter or digit",
            )
        return super().__new__(cls, name)

    def __repr__(self) -> str:
        return f"LocalPart({str(self)!r})"


class EmailAddress(str):
    """``local@domain`` with both parts validated; ``.local`` and ``.domain`` give them back."""

    local: LocalPart
    domain: Domain

    def __new__(cls, value: Any, *, field: str = "e-mail address") -> EmailAddress:
        text = _text(value, field)
        if text.count("@") != 1:
            raise ValueRejected(field, text, "must contain exactly one '@'")
        local_text, domain_text = text.split("@")
        local = LocalPart(local_text, field=f"{field} (local part)")
        domain = Domain(domain_text, field=f"{field} (domain)")
        self = super().__new__(cls, f"{local}@{domain}")
        self.local, self.domain = local, domain
        return self

    def __repr__(self) -> str:
        return f"EmailAddress({str(self)!r})"


class RemotePath(str):
    """An absolute, normalised path on the host with conservative characters (no spaces, no '..')."""

    def __new__(cls, value: Any, *, field: str = "path") -> RemotePath:
        text = _text(value, field)
        if not text.startswith("/"):
            raise ValueRejected(field, text, "must be an absolute path")
        if len(text) > 4096:
            raise ValueRejected(field, text, "is longer than 4096 characters")
        parts = text.split("/")
        if ".." in parts or "." in parts or "//" in text:
            raise ValueRejected(field, text, "must be normalised (no '.', '..' or '//')")
        # One linear pass per component (a nested regex backtracked for seconds on a long bad path).
        if not all(_PATH_PART.fullmatch(part) for part in parts[1:] if part):
            raise ValueRejected(field, text, "may hold only letters, digits, '/', '.', '_', '+' and '-'")
        return super().__new__(cls, text)


class Password:
    """A secret: never shown by ``repr``, ``str`` or a notebook; ``reveal()`` gives it to whoever needs it.

    >>> Password("correct horse battery staple")
    Password('********')
    """

    __slots__ = ("_secret",)

    def __init__(self, value: Any, *, field: str = "password") -> None:
        if isinstance(value, Password):
            value = value.reveal()
        if not isinstance(value, str):
            raise ValueRejected(field, "********", f"must be text, not {type(value).__name__}")
        bad = _control_character(value)
        if bad:
            raise ValueRejected(field, "********", f"contains {bad}")
        if len(value) < 12:
            raise ValueRejected(field, "********", f"is {len(value)} characters long (at least 12)")
        if len(value) > 1024:
            raise ValueRejected(field, "********", "is longer than 1024 characters")
        self._secret = value

    def reveal(self) -> str:
        return self._secret

    def __repr__(self) -> str:
        return "Password('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Password) and other._secret == self._secret

    def __hash__(self) -> int:
        return hash(self._secret)


def setting_name(value: Any, *, field: str = "setting name") -> str:
    """A Postfix or Dovecot parameter name: letters, digits, '_' and an inner '-'.

    >>> setting_name("policyd-spf_time_limit")
    'policyd-spf_time_limit'
    """
    text = _text(value, field)
    if not _PARAM_NAME.fullmatch(text):
        raise ValueRejected(
            field, text, "is not a parameter name (letters, digits, '_' and '-', starting with a lower case letter)"
        )
    return text


def setting_value(value: Any, *, field: str = "setting value") -> str:
    """One line of a ``name = value`` setting: no line breaks, no NUL, no surrounding spaces."""
    if isinstance(value, bool):
        value = "yes" if value else "no"
    if isinstance(value, int):
        value = str(value)
    text = _text(value, field)
    bad = _control_character(text)
    if bad:
        raise ValueRejected(field, text, f"contains {bad}")
    if text != text.strip():
        raise ValueRejected(field, text, "has leading or trailing spaces")
    if len(text) > 4000:
        raise ValueRejected(field, text, "is longer than 4000 characters")
    return text


def list_item(value: Any, *, field: str = "list item") -> str:
    """One item of a comma- or space-separated list: no separators, quotes or line breaks inside."""
    text = setting_value(value, field=field)
    if not text:
        raise ValueRejected(field, text, "is empty")
    for char in ", \t\"'{}":
        if char in text:
            raise ValueRejected(field, text, f"contains {char!r}, which separates or quotes list items")
    return text
