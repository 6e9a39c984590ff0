"""Part 3's checks: the records in DNS, then mail signed by the server judged by an independent receiver.

The receiver (the target's, :meth:`mailkit.server.target.Target.receiver`) stamps its own ``Authentication-Results``;
every message is also verified a second way here, with dkimpy against the same resolver. Where the target has no
receiver whose mailbox mailkit can read (your own server), those checks are skipped with what to do by hand:
send to a mailbox at a big provider and paste the headers it added into ``mailkit headers``.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import re
import secrets
import time
from typing import Any

from mailkit.clients.headers import verdicts
from mailkit.clients.remote_client import run_client
from mailkit.clients.smtp import greeting
from mailkit.core.checks import CheckResult, CheckTable, skipped
from mailkit.core.ssh import Connection
from mailkit.core.text import shorten
from mailkit.domain.lookup import forward_confirmed
from mailkit.domain.records import Lookup, RecordSet, plan
from mailkit.guide.part2 import Part2
from mailkit.guide.part3 import CA_BUNDLE, DKIM_DIR, GUIDE, RSPAMD_USER, Part3
from mailkit.guide.smarthost import SASL_PASSWORDS
from mailkit.server import rules
from mailkit.server.target import Receiver, Target


def dns_checks(part3: Part3, records: list[RecordSet], lookup: Lookup, nameserver: str) -> list[CheckResult]:
    """Each record as the nameserver answers it, and forward-confirmed reverse DNS for the server."""
    results = []
    for record in records:
        differs = plan([record], lookup, nameserver)
        seen = lookup(record.name, record.rtype)
        shown = " ".join(seen)[:60] + ("..." if len(" ".join(seen)) > 60 else "")
        results.append(
            CheckResult(
                "dns",
                f"{record.rtype} {record.name}",
                not differs,
                shown or "no record",
                f"{GUIDE} section 6: publish the record shown by the plan",
            )
        )
    host = part3.part1.hostname
    for domain in part3.domains:
        exchanger = rules.exchanger(lookup(domain, "MX"), host)
        results.append(
            CheckResult(
                "dns",
                f"MX {domain} names {host}",
                exchanger.ok,
                exchanger.detail,
                "01-postfix.ipynb section 1: the domain's MX record names the server",
            )
        )
    for rtype in ("A", "AAAA"):
        for address in lookup(host, rtype):
            confirmed, names = forward_confirmed(address, host, lookup)
            results.append(
                CheckResult(
                    "dns",
                    f"reverse DNS of {address} names {host} and back (FCrDNS)",
                    confirmed,
                    f"PTR {' '.join(names) or 'none'}",
                    f"{GUIDE} section 2: set the PTR at your hosting provider",
                )
            )
    return results


def _authentication_results(message: email.message.Message, authserv: str) -> dict[str, tuple[str, dict[str, str]]]:
    """``method -> (result, properties)`` from the receiver's own Authentication-Results headers."""
    found: dict[str, tuple[str, dict[str, str]]] = {}
    for header in message.get_all("Authentication-Results", []):
        server, results = verdicts(str(header))
        if server == authserv:
            for method, result, properties in results:
                found.setdefault(method, (result, properties))
    return found


def _wait_for(receiver: Receiver, token: str, seconds: float = 30) -> tuple[bytes, email.message.Message] | None:
    return receiver.newest(lambda m: m["Subject"] == token, seconds=seconds)


def dkim_verifies(raw: bytes, lookup: Lookup) -> bool:
    """dkimpy's verdict on ``raw``, with keys from ``lookup`` (the nameserver the checks use)."""
    import dkim

    from mailkit.domain.records import txt_text

    def dnsfunc(name: bytes | str, timeout: int = 5) -> bytes:
        text = name.decode() if isinstance(name, bytes) else name
        answers = lookup(text.rstrip("."), "TXT")
        return txt_text(answers[0]).encode() if answers else b""

    try:
        return bool(dkim.verify(raw, dnsfunc=dnsfunc))
    except dkim.DKIMException:
        return False


def spf_verdict(message: email.message.Message, nameserver: str | None) -> str:
    """pyspf's verdict for the hop the receiver took ``message`` from, asking ``nameserver`` only.

    The client address and HELO name come from the receiver's own ``Received:`` line, the envelope
    sender from ``Return-Path:``.
    """
    from mailkit.domain.lookup import spf_result

    received = " ".join(str(message.get_all("Received", [""])[0]).split())
    hop = re.match(r"from (\S+) \(\S+ \[(?:IPv6:)?([0-9A-Fa-f:.]+)\]\)", received)
    sender = str(message.get("Return-Path", "")).strip("<> ")
    if not hop or not sender:
        return "unreadable"
    return spf_result(hop[2], sender, hop[1], nameserver)


def _judged(
    kind: str,
    found: tuple[bytes, email.message.Message] | None,
    part3: Part3,
    receiver: Receiver,
    target: Target,
    lookup: Lookup,
) -> list[CheckResult]:
    domain = part3.part1.domain
    if found is None:
        return [
            CheckResult(
                "receiver",
                f"{kind}: arrives at {receiver.address}",
                False,
                "not delivered in 30 s",
                f"{GUIDE} section 9: look at \"journalctl -u 'postfix*'\" on both sides",
            )
        ]
    raw, message = found
    judged = _authentication_results(message, receiver.authserv)
    spf, dmarc = judged.get("spf", ("none", {}))[0], judged.get("dmarc", ("none", {}))[0]
    dkim, signer = judged.get("dkim", ("none", {}))
    wanted_dkim = signer.get("header.d") == domain and signer.get("header.s") == part3.selector
    received = " ".join(str(message.get_all("Received", [""])[0]).split())
    second = dkim_verifies(raw, lookup)
    spf_again = spf_verdict(message, target.nameserver)
    stale_key_hint = (
        f"{GUIDE} section 12: the receiver still holds the key it cached for {part3.selector} earlier (a new key "
        "under a used selector); wait for the record's TTL, or sign with a new SELECTOR"
    )
    return [
        CheckResult(
            "receiver",
            f"{kind}: SPF at the receiver",
            spf == "pass",
            f"spf={spf}",
            f"{GUIDE} section 3",
        ),
        CheckResult(
            "receiver",
            f"{kind}: DKIM at the receiver ({domain}, {part3.selector})",
            dkim == "pass" and wanted_dkim,
            f"dkim={dkim} {signer.get('header.d', '')} {signer.get('header.s', '')}".strip(),
            stale_key_hint
            if dkim == "fail" and second
            else f"{GUIDE} section 4: rspamd signs mail whose From: domain has a key",
        ),
        CheckResult(
            "receiver",
            f"{kind}: DMARC at the receiver",
            dmarc == "pass",
            f"dmarc={dmarc}",
            f"{GUIDE} section 5",
        ),
        CheckResult(
            "receiver", f"{kind}: SPF checked again by pyspf", spf_again == "pass", spf_again, f"{GUIDE} section 3"
        ),
        CheckResult(
            "receiver",
            f"{kind}: DKIM verified again by dkimpy",
            second,
            "pass" if second else "fail",
            f"{GUIDE} section 4",
        ),
        CheckResult(
            "receiver",
            f"{kind}: came over TLS",
            "TLS" in received,
            "ESMTPS" if "ESMTPS" in received else "no TLS",
            f"{GUIDE} section 7",
        ),
        *_through_relay(kind, part3, received),
    ]


def _through_relay(kind: str, part3: Part3, received: str) -> list[CheckResult]:
    """With a relay (section 8), the receiver got the message from the relay: the ``Received:`` path shows it."""
    if part3.smarthost is None:
        return []
    relay = str(part3.smarthost.host)
    seen = received.split(" by ", 1)[0]
    return [
        CheckResult(
            "receiver", f"{kind}: came through the relay", relay in seen, rules.shorten(seen), f"{GUIDE} section 8"
        )
    ]


BODY = "A message sent by a logged-in user, to be signed.\r\n"


def _send_as_user(
    part3: Part3, part2: Part2, outside: Connection, receiver: Receiver, body: str = BODY
) -> tuple[bytes, email.message.Message] | None:
    """The first mailbox of the main domain sends to the receiver on 587 (logged in); what the receiver stored."""
    domain = part3.part1.domain
    user = next(m for m in part3.part1.mailboxes if m.endswith("@" + domain))
    token = f"mailkit part 3 {secrets.token_hex(4)}"
    request: dict[str, Any] = {
        "protocol": "smtp",
        "host": part3.part1.hostname,
        "port": 587,
        "mode": "starttls",
        "user": user,
        "password": part2.passwords[user].reveal(),
        "mail_from": user,
        "rcpt": receiver.address,
        "data": f"From: {user}\r\nTo: {receiver.address}\r\nSubject: {token}\r\n\r\n{body}",
    }
    sent = run_client(outside, request)
    return _wait_for(receiver, token) if sent.get("data", [0])[0] == 250 else None


def verify(
    part3: Part3, part2: Part2, mail: Connection, outside: Connection, target: Target, public_keys: dict[str, str]
) -> list[CheckResult]:
    """Part 3: DNS as the target's resolver answers it, then mail from a user and from the server judged by the
    target's receiver (skipped, with what to do by hand, where it has none)."""
    domain = part3.part1.domain
    lookup = target.lookup()
    results = dns_checks(part3, part3.records(public_keys), lookup, target.nameserver_label)
    key_mode = _key_mode(mail, part3)
    receiver = target.receiver(outside)
    if receiver is None:
        reason = target.without("receiver")
        return [*results, key_mode, skipped("receiver", "SPF, DKIM and DMARC at another provider", reason)]
    since = mail.run(["date", "+%Y-%m-%d %H:%M:%S"]).stdout.strip()
    body = BODY
    found = _send_as_user(part3, part2, outside, receiver, body)
    results += _judged("mail from a user (587)", found, part3, receiver, target, lookup)
    if found is not None:
        altered = found[0].replace(body.strip().encode(), b"A message changed on its way.")
        refused = not dkim_verifies(altered, lookup)
        results.append(
            CheckResult(
                "receiver",
                "a copy with its body altered fails DKIM",
                refused,
                "fail" if refused else "PASS",
                f"{GUIDE} section 4",
            )
        )

    token = f"mailkit part 3 local {secrets.token_hex(4)}"
    local = f"From: root@{domain}\nTo: {receiver.address}\nSubject: {token}\n\nMade on the server (as cron does).\n"
    mail.run(["/usr/sbin/sendmail", "-t", "-f", f"root@{domain}"], input=local)
    results += _judged("mail made on the server", _wait_for(receiver, token), part3, receiver, target, lookup)[:2]

    log = mail.run(["journalctl", "-q", "-o", "cat", "-u", "postfix*", "--since", since], check=False).stdout
    if part3.smarthost is None:
        # Trusted: its CA vouches for the name; Verified: its key is the one its TLSA records name (section 13).
        said = [f"{how} TLS connection" for how in ("Verified", "Trusted") if f"{how} TLS connection established to "
                f"{receiver.authserv}" in log]  # fmt: skip
        trusted = bool(said)
        results.append(
            CheckResult(
                "tls",
                "the sender trusted the receiver's certificate",
                trusted,
                said[0] if trusted else "no trusted TLS line in the log",
                f"{GUIDE} section 7: smtp_tls_CAfile = {CA_BUNDLE}",
            )
        )
    else:  # the next hop is the relay, held to "secure": its certificate verified for its name
        verified = f"Verified TLS connection established to {part3.smarthost.host}" in log
        results.append(
            CheckResult(
                "tls",
                "the sender verified the relay's certificate",
                verified,
                "Verified TLS connection" if verified else "no verified TLS line in the log",
                f"{GUIDE} section 8: smtp_tls_policy_maps = secure for the relay",
            )
        )
    return [*results, key_mode]


def outbound(mail: Connection, target: Target) -> CheckTable:
    """Section 8: can the server open port 25 to another provider's mail server? Shown, not enforced: a blocked
    port is what the section's remedy is for, and this is how its reader finds out."""
    exchanger = target.foreign_exchanger
    seen = rules.outbound_open(exchanger, 25, greeting(mail, exchanger, 25))
    fix = f"{GUIDE} section 8: ask your provider to unblock port 25, or send through a relay (RELAYHOST)"
    return CheckTable([CheckResult("outbound", "outbound SMTP (port 25) not blocked", seen.ok, seen.detail, fix)])


def relay_checks(mail: Connection, target: Target, part3: Part3) -> list[CheckResult]:
    """Section 8's promises with a relay: it answers on its port, the login table is root's alone, and the relay
    takes the server's login (``sendmail -bv``: Postfix tries an address through the relay and sends no message).
    """
    if part3.smarthost is None:
        return [skipped("relay", "sending through a relay", "RELAYHOST is not set: the server delivers directly")]
    relay = part3.smarthost
    fix = f"{GUIDE} section 8"
    reach = rules.outbound_open(str(relay.host), relay.port, greeting(mail, str(relay.host), relay.port))
    modes = mail.run(["stat", "-c", "%U:%G %a", SASL_PASSWORDS, f"{SASL_PASSWORDS}.lmdb"], check=False).stdout.split(
        "\n"
    )
    private = [m for m in modes if m] == ["root:root 600", "root:root 600"]
    probe = f"postmaster@{target.relay_domain}"
    since = mail.run(["date", "+%Y-%m-%d %H:%M:%S"]).stdout.strip()
    mail.run(["/usr/sbin/sendmail", "-bv", probe])
    answer = _verify_result(mail, probe, since)
    login = rules.relay_login([answer]) if "status=deliverable" not in answer else rules.Verdict(True, answer)
    return [
        CheckResult("relay", f"the relay {relay.destination} answers", reach.ok, reach.detail, fix),
        CheckResult(
            "relay", "the relay login table is root's alone (0600)", private, " ".join(m for m in modes if m), fix
        ),
        CheckResult(
            "relay",
            f"the relay takes the server's login (sendmail -bv {probe})",
            login.ok and "status=deliverable" in answer,
            rules.shorten(login.detail if not login.ok else answer),
            f"{fix}: RELAY_USER and the relay's password in the passwords file",
        ),
    ]


def _verify_result(mail: Connection, address: str, since: str, seconds: float = 20) -> str:
    """What Postfix logged for an address verification (``sendmail -bv``) of ``address`` since ``since``."""
    deadline = time.monotonic() + seconds
    while True:
        log = mail.run(["journalctl", "-q", "-o", "cat", "-u", "postfix*", "--since", since], check=False).stdout
        lines = [line for line in log.splitlines() if f"to=<{address}>" in line and "status=" in line]
        if lines:
            return "status=" + lines[-1].split("status=", 1)[1]
        if time.monotonic() >= deadline:
            return f"no verification result for {address} in {seconds:.0f} s"
        time.sleep(0.5)


def _key_mode(mail: Connection, part3: Part3) -> CheckResult:
    """The keys and their folder are root's, readable by rspamd's group only: rspamd cannot change them."""
    paths = [DKIM_DIR, *map(part3.key_path, part3.domains)]
    found = mail.run(["stat", "-c", "%F %U:%G %a", "--", *paths], check=False).stdout.splitlines()
    wanted = [f"directory root:{RSPAMD_USER} 750"] + [f"regular file root:{RSPAMD_USER} 640"] * len(part3.domains)
    return CheckResult(
        "dkim",
        f"private keys root's, readable by rspamd only (0640 in a 0750 folder, group {RSPAMD_USER})",
        found == wanted,
        ", ".join(dict.fromkeys(found)) or "not found",
        f"{GUIDE} section 4",
    )


def forged_sender_refused(part3: Part3, outside: Connection, target: Target) -> list[CheckResult]:
    """A message claiming ``From: <user>@<domain>`` sent straight from the outside host to the receiver.

    It fails SPF (the outside host is not the domain's MX) and carries no signature, so DMARC fails; the
    receiver must refuse it when the domain publishes ``p=reject`` and may accept it under ``p=none``.
    """
    domain = part3.part1.domain
    wanted = part3.dmarc_policy == "reject"
    name = f"a forged From: alice@{domain} is {'refused' if wanted else 'delivered (p=none only reports)'}"
    receiver = target.receiver(outside)
    if receiver is None:
        return [skipped("dmarc", name, target.without("receiver"))]
    token = f"mailkit forged {secrets.token_hex(4)}"
    host = receiver.authserv
    argv = ["swaks", "--server", host, "--helo", host, "--to", receiver.address, "--from", f"alice@{domain}",
            "--header", f"Subject: {token}"]  # fmt: skip
    said = outside.run(argv, check=False).stdout
    reply = next((line[4:].strip() for line in said.splitlines() if line.startswith("<** ")), "accepted")
    refused = reply.startswith("550") and "DMARC" in reply.upper()
    return [
        CheckResult(
            "dmarc", name, refused == wanted, shorten(reply), f"{GUIDE} section 10: p=reject in _dmarc.{domain}"
        )
    ]


_USER_SUBJECT = re.compile(r"mailkit part 3 [0-9a-f]{8}")


def user_message(receiver: Receiver | None) -> bytes | None:
    """The newest message alice sent through submission in :func:`verify`, as the receiver stored it."""
    if receiver is None:
        return None
    found = receiver.newest(lambda m: bool(_USER_SUBJECT.fullmatch(m["Subject"] or "")))
    return found[0] if found else None


def signed_message(receiver: Receiver, selector: str) -> bytes | None:
    """The newest such message that carries a signature by ``selector``."""

    def wanted(message: email.message.Message) -> bool:
        tags = "".join("".join(str(v).split()) for v in message.get_all("DKIM-Signature", []))  # unfolded
        return bool(_USER_SUBJECT.fullmatch(message["Subject"] or "")) and f";s={selector};" in tags

    found = receiver.newest(wanted)
    return found[0] if found else None


def rotation(old: Part3, new: Part3, part2: Part2, outside: Connection, target: Target) -> list[CheckResult]:
    """With both keys published and signing switched: old mail still verifies, new mail is signed with the new key."""
    receiver = target.receiver(outside)
    if receiver is None:
        return [skipped("rotation", f"mail signed with {new.selector} verifies at another provider",
                        target.without("receiver"))]  # fmt: skip
    lookup = target.lookup()
    earlier = signed_message(receiver, old.selector)
    still = earlier is not None and dkim_verifies(earlier, lookup)
    results = [
        CheckResult("rotation", f"a message signed earlier with {old.selector} still verifies", still,
                    "pass" if still else "fail", f"{GUIDE} section 12: keep the old record published"),
    ]  # fmt: skip
    found = _send_as_user(new, part2, outside, receiver)
    judged = [r for r in _judged("after the switch", found, new, receiver, target, lookup) if "DKIM" in r.name]
    return results + judged


def after_retirement(old: Part3, new: Part3, outside: Connection, target: Target) -> list[CheckResult]:
    """With the old record deleted, old mail no longer verifies (which is why it stayed published) and new mail does."""
    receiver = target.receiver(outside)
    if receiver is None:
        return [skipped("rotation", f"mail signed with the retired {old.selector} no longer verifies",
                        target.without("receiver"))]  # fmt: skip
    lookup = target.lookup()
    earlier, later = signed_message(receiver, old.selector), signed_message(receiver, new.selector)
    old_fails = earlier is not None and not dkim_verifies(earlier, lookup)
    new_passes = later is not None and dkim_verifies(later, lookup)
    return [
        CheckResult("rotation", f"a message signed with the retired {old.selector} no longer verifies", old_fails,
                    "fail (as expected)" if old_fails else "still passes", f"{GUIDE} section 12"),
        CheckResult("rotation", f"a message signed with {new.selector} verifies", new_passes,
                    "pass" if new_passes else "fail", f"{GUIDE} section 12"),
    ]  # fmt: skip
