"""The services mailkit configures: how to validate a config and how to make it take effect.

A registry, not an if/else chain: a new service is one entry.

>>> SERVICES["postfix"].validate
('postfix', 'check')
"""

from __future__ import annotations

from dataclasses import dataclass

from mailkit.errors import UsageError


@dataclass(frozen=True)
class Service:
    """A systemd unit with its config validator and how a config change takes effect."""

    name: str
    unit: str
    validate: tuple[str, ...]
    #: How a config change takes effect; reload-or-restart also starts a service that is not running.
    reload: tuple[str, ...]
    #: Config changes that a reload does not pick up need a restart instead.
    restart: tuple[str, ...] = ()
    #: The validator prints its errors only to a terminal (else only to syslog).
    validate_on_tty: bool = False

    def apply_command(self, needs_restart: bool) -> tuple[str, ...]:
        return self.restart if needs_restart and self.restart else self.reload


SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Service(
            "postfix",
            "postfix",
            ("postfix", "check"),
            ("systemctl", "reload-or-restart", "postfix"),
            ("systemctl", "restart", "postfix"),
            validate_on_tty=True,
        ),
        Service(
            "dovecot",
            "dovecot",
            ("doveconf", "-n"),
            ("systemctl", "reload-or-restart", "dovecot"),
            ("systemctl", "restart", "dovecot"),
        ),
        Service(
            "opendkim",
            "opendkim",
            ("opendkim", "-n"),
            ("systemctl", "restart", "opendkim"),
        ),
        Service(
            "named",
            "named",
            ("named-checkconf",),
            ("systemctl", "reload-or-restart", "named"),
        ),
    )
}


def service(name: str) -> Service:
    try:
        return SERVICES[name]
    except KeyError:
        raise UsageError(f"unknown service {name!r}: known are {', '.join(SERVICES)}") from None
