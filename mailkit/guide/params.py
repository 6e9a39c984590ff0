"""A params file for a headless run on your own server: the notebooks' own parameter names, validated first.

The file is JSON or YAML (by its suffix), a mapping of the names the notebooks' ``parameters`` cells define
(``DOMAIN``, ``HOSTNAME``, ``OTHER_DOMAINS``, ``MAILBOXES``, ``ALIASES``, ``DMARC_POLICY``...; moving in's
``MAILBOX``, ``OLD_HOST``, ``OLD_USER``; the backups' ``BACKUP_HOST``, ``BACKUP_HOST_KEY``...), as papermill
takes them: one file serves every chapter, each notebook takes the names it has. Every value is checked, with the
same classes the parts use, before anything touches a host. A file that sets ``DOMAIN`` gets no second domain
and no aliases unless it names them (the lab's are not yours). Passwords never go in it: they come from a prompt
or a passwords file (mode 0600).

>>> validate({"DOMAIN": "example.net", "MAILBOXES": ["ann@example.net"]})["DOMAIN"]
'example.net'
>>> validate({"DOMIAN": "example.net"})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
mailkit.core.errors.UsageError: params: unknown name 'DOMIAN' (the notebooks take: ACME_EMAIL, ACME_SERVER, ...)
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mailkit.core.errors import UsageError
from mailkit.core.values import EmailAddress, RemotePath, ValueRejected, list_item

#: The biggest params file read (a person's list of mailboxes and aliases, not a data set).
MAX_BYTES = 64 * 1024
#: What each name holds: a string, a list of strings, a mapping of string to list of strings, a port, an OpenSSH
#: public key (``TYPE BASE64 [comment]``), or nothing (None).
SHAPES: dict[str, str] = {
    "DOMAIN": "text",
    "HOSTNAME": "text?",
    "OTHER_DOMAINS": "list",
    "MAILBOXES": "list",
    "ALIASES": "mapping",
    "SELECTOR": "text",
    "DMARC_POLICY": "text",
    "NAMESERVER": "text?",
    "BLOCKLISTS": "list?",
    "CERT_FILE": "text?",
    "KEY_FILE": "text?",
    "ACME_SERVER": "text?",
    "ACME_EMAIL": "text?",
    # Part 3, section 8: a relay, when the provider blocks port 25 (its password goes in the passwords file).
    "RELAYHOST": "text?",
    "RELAY_PORT": "port",
    "RELAY_USER": "text?",
    "RELAY_SPF_INCLUDE": "text?",
    # Part 4, section 8: the port sshd listens on, kept open by the firewall.
    "SSH_PORT": "port",
    # Part 4, section 9: the addresses fail2ban never bans (where you check and administer the server from), and
    # how long a guesser is refused.
    "NEVER_BAN": "list?",
    "BAN_TIME": "text",
    # Chapter 6: the mailbox at home and the account moved out of (its app password goes in the passwords file).
    "MAILBOX": "text",
    "OLD_HOST": "text",
    "OLD_USER": "text",
    # Chapter 7: the account at the backup host, the repository, the host's key as its provider shows it, the time.
    "BACKUP_HOST": "text",
    "BACKUP_USER": "text",
    "BACKUP_PORT": "port",
    "BACKUP_PATH": "text?",
    "BACKUP_HOST_KEY": "key?",
    "BACKUP_AT": "text",
}
#: Names a params file must not set, and why.
REFUSED = {
    "PASSWORDS": "passwords never go in a params file: give --passwords FILE (mode 0600) or answer the prompt",
    "TARGET": "the server is --host, not a parameter",
    "OUTSIDE": "the outside host is --outside, not a parameter",
}


def load(path: Path) -> dict[str, Any]:
    """Read and validate a params file (``.json``, ``.yaml`` or ``.yml``)."""
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read the params file {path}: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise UsageError(f"the params file {path} is over {MAX_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise UsageError(f"the params file {path} must end in .json, .yaml or .yml")
    except (UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"the params file {path} does not parse: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # yaml.YAMLError and its kin
        if type(exc).__module__.startswith("yaml"):
            raise UsageError(f"the params file {path} does not parse: {str(exc).splitlines()[0]}") from None
        raise
    if not isinstance(data, dict):
        raise UsageError(f"the params file {path} must be a mapping of NAME: value")
    return validate(data)


def validate(data: Mapping[str, Any]) -> dict[str, Any]:
    """Check every name and value; return them as the notebooks take them (an error names the first bad one)."""
    for name in data:
        if name in REFUSED:
            raise UsageError(f"params: {name}: {REFUSED[name]}")
        if name not in SHAPES:
            raise UsageError(f"params: unknown name {name!r} (the notebooks take: {', '.join(sorted(SHAPES))})")
    values = {name: _shaped(name, value) for name, value in data.items()}
    if "DOMAIN" in values:  # your own domain: the lab's second domain and aliases are not yours
        values = {"OTHER_DOMAINS": [], "ALIASES": {}, **values}
    _semantics(values)
    return values


def _shaped(name: str, value: Any) -> Any:
    shape = SHAPES[name]
    if value is None and shape.endswith("?"):
        return None
    shape = shape.rstrip("?")
    if shape == "port":
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
            raise ValueRejected(name, value, "must be a port number")
        return value
    if shape == "key":
        from mailkit.server.backup_space import public_key_line

        return public_key_line(value if isinstance(value, str) else repr(value), name)
    if shape == "text":
        return list_item(value, field=name)
    if shape == "list":
        if not isinstance(value, list):
            raise ValueRejected(name, value, "must be a list")
        return [list_item(v, field=name) for v in value]
    if not isinstance(value, dict) or not all(isinstance(v, list) for v in value.values()):
        raise ValueRejected(name, value, "must map an address to a list of addresses")
    return {list_item(k, field=name): [list_item(v, field=f"{name}[{k}]") for v in vs] for k, vs in value.items()}


def _semantics(values: dict[str, Any]) -> None:
    """The parts' own checks on the values: a domain is a domain, a mailbox has one, a selector is one..."""
    from mailkit.guide.part1 import Part1
    from mailkit.guide.part2 import Part2
    from mailkit.guide.part3 import Part3
    from mailkit.guide.part4 import Part4

    defaults = Part1()
    part1 = Part1(
        values.get("DOMAIN", defaults.domain),
        values.get("OTHER_DOMAINS", list(defaults.other_domains)),
        mailboxes=values.get("MAILBOXES", list(defaults.mailboxes)),
        aliases=values.get("ALIASES", {}),
        hostname=values.get("HOSTNAME") or "",
    )
    part3 = Part3(part1, values.get("SELECTOR", "s202611"), values.get("DMARC_POLICY", "none"))
    if values.get("BLOCKLISTS") is not None:
        Part4(part3, Part2(part1), tuple(values["BLOCKLISTS"]))
    if values.get("NAMESERVER") is not None:
        try:
            ipaddress.ip_address(values["NAMESERVER"])
        except ValueError:
            raise ValueRejected("NAMESERVER", values["NAMESERVER"], "is not an IP address") from None
    if values.get("ACME_SERVER") is not None:
        from mailkit.core.resources.acme import acme_url

        acme_url(values["ACME_SERVER"])
    if values.get("ACME_EMAIL") is not None:
        EmailAddress(values["ACME_EMAIL"], field="ACME_EMAIL")
    if values.get("RELAYHOST") is not None:
        from mailkit.core.values import Hostname, Password
        from mailkit.guide.smarthost import Smarthost

        if not values.get("RELAY_USER"):
            raise ValueRejected("RELAY_USER", None, "is needed with RELAYHOST: your login at the relay")
        stand_in = Password("the password comes from the passwords file")
        host = Hostname(values["RELAYHOST"], field="RELAYHOST")
        port, include = values.get("RELAY_PORT", 587), values.get("RELAY_SPF_INCLUDE") or ""
        Smarthost(host, values["RELAY_USER"], stand_in, port, include)
    if values.get("NEVER_BAN") is not None or "BAN_TIME" in values:
        from mailkit.guide.guessing import ban_settings

        ban_settings(values.get("NEVER_BAN") or [], values.get("BAN_TIME", "1h"), "10m", 5)
    _chapters_beside(values)
    for name in ("CERT_FILE", "KEY_FILE"):
        if values.get(name) is not None:
            RemotePath(values[name], field=name)


def _chapters_beside(values: dict[str, Any]) -> None:
    """Moving in and backups: the addresses, the host names, the repository and the host key, as the chapters check
    them (a key that is given must be one: the chapter pins it, it never learns one)."""
    from mailkit.core.values import Hostname
    from mailkit.guide.backups import calendar_time
    from mailkit.server.backup_space import BackupSpace

    for name in ("MAILBOX", "OLD_USER"):
        if name in values:
            EmailAddress(values[name], field=name)
    if "OLD_HOST" in values:
        Hostname(values["OLD_HOST"], field="OLD_HOST")
    if "BACKUP_AT" in values:
        calendar_time(values["BACKUP_AT"])
    backup = {
        name: values[name] for name in ("BACKUP_HOST", "BACKUP_USER", "BACKUP_PORT", "BACKUP_PATH") if name in values
    }
    if backup:
        stand_in = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIClnkdY0ORW99nEM6kMP/5ZtzYiwdyTakgs3wzLbZEh3"
        BackupSpace(
            Hostname(backup.get("BACKUP_HOST", "backup.example.net"), field="BACKUP_HOST"),
            backup.get("BACKUP_USER", "borg"),
            backup.get("BACKUP_PATH") or "mail.example.org",
            stand_in,
            backup.get("BACKUP_PORT", 22),
        )
