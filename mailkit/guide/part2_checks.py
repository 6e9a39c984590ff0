"""What part 2 promises, checked from the outside host with Python's smtplib and imaplib.

Whether each check passes is :mod:`mailkit.server.rules`' to say, as for ``mailkit check``:

>>> tls_verdict({"tls": {"version": "TLSv1.3", "subject": "mail.example.org", "not_after": "Jan  1 00:00:00 2100 GMT"}},
...             "mail.example.org").detail
'TLSv1.3, certificate for mail.example.org verified, valid for more than 14 days'
"""

from __future__ import annotations

import secrets
import ssl
import time
from collections.abc import Mapping
from typing import Any

from mailkit.clients.remote_client import run_client, run_clients, throwaway_login
from mailkit.core.checks import CheckResult
from mailkit.core.ssh import Connection
from mailkit.core.values import Password
from mailkit.guide.part1 import Part1
from mailkit.server import mailboxes, rules

GUIDE = "02-dovecot.ipynb"
IMAPS, IMAP, SMTP, SUBMISSION, SUBMISSIONS = 993, 143, 25, 587, 465


def tls_verdict(seen: dict[str, Any], host: str) -> rules.Verdict:
    """The certificate rule over what the outside client saw on one port (or why it saw nothing)."""
    if "tls_error" in seen:
        return rules.Verdict(False, f"TLS failed: {seen['tls_error']}")
    if "error" in seen:
        return rules.Verdict(False, seen["error"])
    tls = seen.get("tls") or {}
    return rules.certificate(str(tls.get("version")), str(tls.get("subject")), host, days_left(tls.get("not_after")))


def days_left(not_after: str | None) -> float:
    """Days until an ``ssl.getpeercert()`` notAfter date ('Nov 25 03:37:20 2027 GMT')."""
    if not not_after:
        return -1.0
    return (ssl.cert_time_to_seconds(not_after) - time.time()) / 86400


def verify(
    part1: Part1, passwords: Mapping[str, Password], mail: Connection, outside: Connection, part1_subject: str | None
) -> list[CheckResult]:
    """Part 2's checks: Dovecot's users and logins on the server, IMAP and submission from the outside host."""
    host = str(part1.hostname)
    users = [m for m in part1.mailboxes if m in passwords]
    if len(users) < 2:
        return [
            CheckResult(
                "setup",
                "passwords for two mailboxes",
                False,
                f"{len(users)} given",
                f"{GUIDE}: give PASSWORDS for at least two mailboxes so logins can be checked",
            )
        ]
    user, other = users[0], users[1]
    password = passwords[user].reveal()
    subject = part1_subject or "mailkit check"
    token = f"mailkit lmtp {secrets.token_hex(6)}"

    def imap(mode: str, port: int, secret: str = password, **extra: Any) -> dict[str, Any]:
        return {"protocol": "imap", "host": host, "port": port, "mode": mode, "user": user, "password": secret, **extra}

    def smtp(mode: str, port: int, **extra: Any) -> dict[str, Any]:
        return {"protocol": "smtp", "host": host, "port": port, "mode": mode, **extra}

    # Every conversation that depends on no other, at the same time from the outside host; then the message sent
    # to port 25 looked for over IMAP; the wrong passwords last (Dovecot delays an address's logins after a
    # failure, and the right ones should not wait for that).
    asks = {
        "imaps": imap("tls", IMAPS, subject=subject),
        "imap starttls": imap("starttls", IMAP, subject=subject),
        # Probed with a throwaway user and password: a real one never crosses an unencrypted connection.
        "imap plain": {"protocol": "imap", "host": host, "port": IMAP, "mode": "plain",
                       **throwaway_login(user.split("@", 1)[1])},
        "lmtp": smtp("starttls", SMTP, mail_from="probe@outside.example.net", rcpt=user,
                     data=f"From: probe@outside.example.net\r\nTo: {user}\r\nSubject: {token}\r\n\r\nvia LMTP\r\n"),
        "587 PLAIN": smtp("starttls", SUBMISSION, user=user, password=password, mechanism="PLAIN"),
        "587 LOGIN": smtp("starttls", SUBMISSION, user=user, password=password, mechanism="LOGIN"),
        "587 plain": smtp("plain", SUBMISSION),
        "587 relay": smtp("starttls", SUBMISSION, mail_from=user, rcpt="victim@other.test"),
        "465": smtp("tls", SUBMISSIONS, user=user, password=password, mail_from=user, rcpt=other,
                    data=f"From: {user}\r\nTo: {other}\r\nSubject: via 465\r\n\r\nhello\r\n"),
        "587 as other": smtp("starttls", SUBMISSION, user=user, password=password, mail_from=other, rcpt=user),
        "25": smtp("starttls", SMTP),
        "tls 25": smtp("starttls", SMTP),
        "tls 587": smtp("starttls", SUBMISSION),
        "tls 465": smtp("tls", SUBMISSIONS),
        "tls 143": imap("starttls", IMAP),
        "tls 993": imap("tls", IMAPS),
    }  # fmt: skip
    seen = dict(zip(asks, run_clients(outside, list(asks.values())), strict=True))
    found = 0
    deadline = time.monotonic() + 20
    while seen["lmtp"].get("data", [0])[0] == 250 and time.monotonic() < deadline:
        found = run_client(outside, imap("tls", IMAPS, subject=token)).get("found", 0)
        if found:
            break
        time.sleep(0.3)
    wrong_imap, wrong_587 = run_clients(
        outside,
        [
            imap("tls", IMAPS, secret=password + "-wrong"),
            smtp("starttls", SUBMISSION, user=user, password=password + "-wrong"),
        ],
    )
    results: list[CheckResult] = []

    # IMAP: TLS on connect and STARTTLS log in and see part 1's mail; cleartext login is refused.
    for label, key in (("IMAPS (993)", "imaps"), ("IMAP + STARTTLS (143)", "imap starttls")):
        answer = seen[key]
        ok = answer.get("login", [""])[0] == "OK" and answer.get("found", 0) >= 1
        detail = f"login {answer.get('login', ['?'])[0]}, {answer.get('found', 0)} message(s) from part 1 in INBOX"
        results.append(
            CheckResult(
                "imap",
                f"{label}: log in and read part 1's mail",
                ok,
                answer.get("error", detail),
                f"{GUIDE} sections 4-5: mail_home/mail_path must point at part 1's Maildirs",
            )
        )
    # The refusal must come from the cleartext rule, not from the unknown user.
    plain = seen["imap plain"]
    cleartext = rules.cleartext_login_refused(plain.get("capabilities_before_tls", []), plain.get("login", ["OK", ""]))
    results.append(
        CheckResult(
            "imap",
            "cleartext LOGIN on 143 without STARTTLS refused",
            cleartext.ok,
            cleartext.detail,
            f"{GUIDE} section 4: auth_allow_cleartext = no / disable_plaintext_auth = yes",
        )
    )
    results.append(
        CheckResult(
            "imap",
            "wrong password refused",
            wrong_imap.get("login", ["OK"])[0] != "OK",
            f"login {wrong_imap.get('login', ['?'])[0]}",
            f"{GUIDE} section 4",
        )
    )

    # Port 25 -> Postfix -> LMTP -> Dovecot -> IMAP.
    results.append(
        CheckResult(
            "delivery",
            "a new message to port 25 arrives over LMTP, readable over IMAP",
            bool(found),
            f"SMTP {seen['lmtp'].get('data', ['?'])[0]}, found over IMAP: {bool(found)}",
            f"{GUIDE} section 6: virtual_transport = lmtp:unix:private/dovecot-lmtp",
        )
    )

    # Submission: TLS first, then AUTH; senders limited to their own addresses.
    for mech in ("PLAIN", "LOGIN"):
        answer = seen[f"587 {mech}"]
        results.append(
            CheckResult(
                "submission",
                f"587 STARTTLS + AUTH {mech}",
                answer.get("auth", [0])[0] == 235,
                _reply(answer.get("auth")),
                f"{GUIDE} section 7",
            )
        )
    results.append(
        CheckResult(
            "submission",
            "587 wrong password refused",
            wrong_587.get("auth", [0])[0] == 535,
            _reply(wrong_587.get("auth")),
            f"{GUIDE} section 7",
        )
    )
    answer = seen["587 plain"]
    early = rules.no_auth_before_tls(answer.get("auth_before_tls"), answer.get("starttls_offered"))
    results.append(
        CheckResult(
            "submission",
            "587 offers no AUTH before STARTTLS",
            early.ok,
            answer.get("error", early.detail),
            f"{GUIDE} section 7: smtpd_tls_auth_only = yes",
        )
    )
    answer = seen["587 relay"]
    code, text = [*answer.get("rcpt", answer.get("mail", [0, answer.get("error", "")])), ""][:2]
    relay = rules.relay_refused(int(code), str(text))
    results.append(
        CheckResult("submission", "587 without AUTH cannot relay", relay.ok, relay.detail, f"{GUIDE} section 7")
    )
    answer = seen["465"]
    results.append(
        CheckResult(
            "submission",
            "465 TLS on connect + AUTH, message accepted",
            answer.get("auth", [0])[0] == 235 and answer.get("data", [0])[0] == 250,
            f"AUTH {_reply(answer.get('auth'))}; DATA {_reply(answer.get('data'))}",
            f"{GUIDE} section 7",
        )
    )
    answer = seen["587 as other"]
    mail_reply = answer.get("mail", [0, ""])
    rcpt_reply = answer.get("rcpt", mail_reply)
    rejected = "not owned by user" in str(rcpt_reply[1]) and 500 <= rcpt_reply[0] < 600
    results.append(
        CheckResult(
            "submission",
            f"{user} cannot send as {other}",
            rejected,
            _reply(rcpt_reply),
            f"{GUIDE} section 7: smtpd_sender_login_maps + reject_sender_login_mismatch",
        )
    )
    answer = seen["25"]
    results.append(
        CheckResult(
            "smtp",
            "port 25 offers no AUTH",
            not answer.get("auth_offered") and answer.get("auth_before_tls") is False,
            f"AUTH: {answer.get('auth_offered') or 'none'}",
            f"{GUIDE} section 7: smtpd_sasl_auth_enable = no in main.cf",
        )
    )

    # The same certificate, verified against the trust store, on every service.
    for label, key in (
        ("SMTP 25 STARTTLS", "tls 25"),
        ("submission 587 STARTTLS", "tls 587"),
        ("submissions 465", "tls 465"),
        ("IMAP 143 STARTTLS", "tls 143"),
        ("IMAPS 993", "tls 993"),
    ):
        verdict = tls_verdict(seen[key], host)
        results.append(
            CheckResult(
                "tls", label, verdict.ok, verdict.detail, f"{GUIDE} section 3: the certificate must be for {host}"
            )
        )

    # On the server: Dovecot knows every user and checks their password.
    for address in users:
        auth = mail.run(["doveadm", "auth", "test", address], input=passwords[address].reveal() + "\n", check=False)
        who = mail.run(["doveadm", "user", "-f", "home", address], check=False).stdout.strip()
        ok = auth.ok and "auth succeeded" in auth.stdout and who == part1.maildir(address)
        results.append(
            CheckResult(
                "dovecot",
                f"doveadm auth test + user {address}",
                ok,
                f"{'auth succeeded' if auth.ok else 'auth failed'}, home {who}",
                f"{GUIDE} section 4: the passwd-file and userdb",
            )
        )
    results += mailboxes.check_consistency(mailboxes.MailboxFiles.read(mail))
    return results


def _reply(reply: list[Any] | None) -> str:
    return f"{reply[0]} {reply[1]}" if reply else "no reply"
