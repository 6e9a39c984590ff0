"""Which host a notebook or command works on: one place decides.

Order: an explicit argument, then ``MAILKIT_HOST``, then the lab's ``mail`` host. ``lab:NAME``
means a lab host (reached with the lab's own key and known_hosts); anything else is an ssh
destination as you would give it to ``ssh`` (``[user@]host``, aliases from ``~/.ssh/config``).

>>> resolve_target(None, env={})
'lab:mail'
>>> resolve_target(None, env={"MAILKIT_HOST": "admin@mx.example.net"})
'admin@mx.example.net'
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from mailkit.errors import UsageError
from mailkit.lab.layout import HOSTS, host_spec
from mailkit.ssh import Connection

DEFAULT_TARGET = "lab:mail"
ENV_VAR = "MAILKIT_HOST"
_DESTINATION = re.compile(r"^(?:[a-z_][a-z0-9_.-]{0,31}@)?[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})$")


def resolve_target(target: str | None = None, *, env: Mapping[str, str] | None = None) -> str:
    """The target in effect, validated (a destination can never smuggle ssh options)."""
    env = os.environ if env is None else env
    chosen = target or env.get(ENV_VAR) or DEFAULT_TARGET
    if chosen.startswith("lab:"):
        name = chosen[4:]
        if host_spec(name) is None:
            raise UsageError(f"no lab host {name!r}: choose one of {', '.join(HOSTS)} or a student (student01)")
        return chosen
    if not _DESTINATION.fullmatch(chosen):
        raise UsageError(f"{chosen!r} is not an SSH destination like 'user@host.example.org' or an alias")
    return chosen


def lab_connection(name: str) -> Connection:
    """A connection to a lab host, with the lab's key, ssh_config and known_hosts."""
    from mailkit.lab.lab import Lab

    lab = Lab()
    spec = host_spec(name)
    if spec is None:
        raise UsageError(f"no lab host {name!r}: choose one of {', '.join(HOSTS)} or a student (student01)")
    lab.require_up()
    if name not in lab.hosts():
        raise UsageError(f"the lab has no {name}: 'mailkit workshop up --students N' makes student hosts")
    return Connection(spec.fqdn, ssh_config=lab.ssh_config)


def connect(target: str | None = None) -> Connection:
    """The connection for ``target`` (see :func:`resolve_target`); opened on first use."""
    chosen = resolve_target(target)
    if chosen.startswith("lab:"):
        return lab_connection(chosen[4:])
    return Connection(chosen)
