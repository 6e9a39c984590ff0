"""The mail account a reader moves out of: a provider's IMAP server, the login there, and its app password.

>>> OldAccount(Hostname("imap.cloud.example.net"), EmailAddress("a@cloud.example.net"), Password("100% secret!"))
Traceback (most recent call last):
mailkit.core.values.ValueRejected: app password: '********' contains '%', which Dovecot's settings would read as a \
variable: make an app password without it
"""

from __future__ import annotations

from dataclasses import dataclass

from mailkit.core.values import EmailAddress, Hostname, Password, ValueRejected


@dataclass(frozen=True)
class OldAccount:
    """The account to move out of: the provider's IMAP server, the login, its app password.

    Its app password is checked for what Dovecot's settings would misread (the move hands it to Dovecot).
    """

    host: Hostname
    user: EmailAddress
    password: Password
    port: int = 993

    def __post_init__(self) -> None:
        for char, why in (("%", ", which Dovecot's settings would read as a variable"), ('"', ""), ("\\", "")):
            if char in self.password.reveal():
                raise ValueRejected(
                    "app password", "********", f"contains {char!r}{why}: make an app password without it"
                )
        if not 1 <= self.port <= 65535:
            raise ValueRejected("port", str(self.port), "is not a port number")
