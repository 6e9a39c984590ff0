"""The one row of ``mailkit check`` that sends anything, and only when asked (``--send-to``): one message from the
server's postmaster to an address at another provider, read back there over IMAP, and judged by what that provider
wrote in its own ``Authentication-Results``. Off by default, and the row says so: the other rows only look.

The message leaves the way the server's own mail does (``sendmail`` on the server: Postfix signs it through rspamd,
and sends it directly or through the relay of section 8); it carries a random token in ``X-Mailkit-Check`` by
which it is found again.

>>> print(probe_message("postmaster@example.org", "me@example.net", "3f1c9a0b", "Mon, 07 Dec 2026 10:00:00 +0000")
...       .decode())  # doctest: +NORMALIZE_WHITESPACE
From: postmaster@example.org
To: me@example.net
Subject: mailkit check: a message read back at your other provider
Date: Mon, 07 Dec 2026 10:00:00 +0000
Message-ID: <mailkit-check-3f1c9a0b@example.org>
X-Mailkit-Check: 3f1c9a0b
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii
<BLANKLINE>
Sent by 'mailkit check --send-to me@example.net': its verdicts are in this message's header.
You may delete it.
"""

from __future__ import annotations

import email
import email.policy
import email.utils

from mailkit.clients.headers import verdicts
from mailkit.clients.read_back import TOKEN_HEADER, ReadAccount, read_back
from mailkit.core.errors import MailkitError
from mailkit.core.ssh import Connection
from mailkit.core.values import EmailAddress
from mailkit.domain.records import Lookup
from mailkit.server import rules
from mailkit.status.rows import Row

GROUP = "sending"
NAME = "a message read back at another provider (SPF, DKIM, DMARC there)"
FIX = "03-spam-outbound.ipynb sections 3 to 5: SPF, DKIM and DMARC; 'mailkit headers' explains the header in full"
NOT_ASKED = (
    "not sent: the only row that sends anything, so only when asked: --send-to ADDRESS --read-at IMAP-HOST "
    "(an address of yours at another provider; its password from the passwords file, or asked for)"
)


def probe_message(sender: str, to: str, token: str, date: str | None = None) -> bytes:
    """The message: plain text, the token in its header (never a password or anything of the server's)."""
    domain = sender.rsplit("@", 1)[1]
    lines = [
        f"From: {sender}",
        f"To: {to}",
        "Subject: mailkit check: a message read back at your other provider",
        f"Date: {date or email.utils.formatdate(localtime=False, usegmt=False)}",
        f"Message-ID: <mailkit-check-{token}@{domain}>",
        f"{TOKEN_HEADER}: {token}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        f"Sent by 'mailkit check --send-to {to}': its verdicts are in this message's header.",
        "You may delete it.",
        "",
    ]
    return "\r\n".join(lines).encode()


def send_from_server(conn: Connection, domain: str, to: EmailAddress, token: str) -> None:
    """The message handed to the server's Postfix, from ``postmaster@domain`` (an address the guide keeps)."""
    sender = str(EmailAddress(f"postmaster@{domain}"))
    done = conn.run(
        ["/usr/sbin/sendmail", "-i", "-f", sender, "--", str(to)],
        input=probe_message(sender, str(to), token),
        check=False,
        timeout=60,
    )
    if not done.ok:
        raise MailkitError(f"sendmail on the server refused the message: {done.stderr.strip()[:300]}", done)


def not_asked() -> Row:
    """The row when nothing is to be sent: skipped, saying how to ask for it."""
    return Row(GROUP, NAME, True, NOT_ASKED, skipped=True, part=3)


def read_back_row(
    account: ReadAccount,
    token: str,
    domain: str,
    lookup: Lookup,
    *,
    ca_file: str | None = None,
    seconds: float = 120,
) -> Row:
    """The row from the stored header of the message with ``token`` at ``account``'s provider."""
    addresses = [*lookup(str(account.host), "A"), *lookup(str(account.host), "AAAA")]
    if not addresses:
        return Row(GROUP, NAME, False, f"{account.host} has no address", "check --read-at", part=3)
    try:
        header = read_back(account, token, addresses[0], seconds=seconds, ca_file=ca_file)
    except MailkitError as exc:
        return Row(GROUP, NAME, False, f"cannot tell: {exc}", "check --read-at and the password", part=3)
    if header is None:
        detail = (
            f"not in {account.user}'s mailbox after {seconds:.0f} s (inbox and spam folders): "
            "'postqueue -p' and the mail log on the server say where it is"
        )
        return Row(GROUP, NAME, False, detail, FIX, part=3)
    stored = email.message_from_bytes(header, policy=email.policy.compat32)
    # The provider's own headers: the topmost one's authserv-id, and every header that names it (filters such as
    # OpenDKIM and OpenDMARC each add their own); headers of others further down are not its word.
    parsed = [verdicts(str(value)) for value in stored.get_all("Authentication-Results") or []]
    server = parsed[0][0] if parsed else ""
    found = [one for said_by, said in parsed if said_by == server for one in said] if parsed else None
    verdict = rules.judged_at_receiver(server, found, domain)
    return Row(GROUP, NAME, verdict.ok, verdict.detail, FIX, part=3)
