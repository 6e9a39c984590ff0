"""Part 4's checks: each layer of inbound filtering proved from the outside host, with real clients.

Every expected refusal is asserted as one (code and reason), every delivery is found where it belongs
over IMAP, and learning is read from rspamd's own statistics. Messages carry a random token, so no
check can pass on a message an earlier run left behind (nor can rspamd call it "already learned").
"""

from __future__ import annotations

import email
import email.policy
import re
import secrets
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mailkit.clients.remote_client import run_program
from mailkit.core.checks import CheckResult, skipped
from mailkit.core.ssh import Connection
from mailkit.core.text import shorten
from mailkit.guide.part2 import Part2
from mailkit.guide.part4 import (
    CONTROLLER_PORT,
    GUIDE,
    LEARN_EXTENSIONS,
    LEARN_PLUGINS,
    MANAGESIEVE_PORT,
    SIEVE_DIR,
    SIEVE_SCRIPTS,
    Part4,
)
from mailkit.remote import source
from mailkit.server.target import Target

#: rspamd's test strings (https://rspamd.com/doc/gtube_patterns.html): GTUBE itself asks for "reject";
#: the same string starting with Y asks for "add header" (lab only: options.inc enables it).
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
GTUBE_ADD_HEADER = "Y" + GTUBE[1:]
#: Where rspamd's Bayes (new schema, one set for all users) counts what it learned: hash "RS".
BAYES_COUNTERS = "RS"
#: Words for message bodies: Bayes learns nothing from fewer than 11 tokens.
_WORDS = [
    "garden",
    "letter",
    "harbour",
    "winter",
    "meeting",
    "pencil",
    "orchard",
    "journey",
    "kettle",
    "window",
    "violin",
    "marble",
    "ladder",
    "candle",
    "meadow",
    "river",
    "basket",
    "lantern",
    "pepper",
    "saddle",
    "thunder",
    "blanket",
    "compass",
    "tunnel",
]

CLIENT = source("spam_client")


def _client(outside: Connection, request: dict[str, Any]) -> dict[str, Any]:
    return run_program(outside, CLIENT, request)


def token() -> str:
    return f"mk4-{secrets.token_hex(5)}"


def message(subject: str, body_extra: str = "", sender: str = "dana@example.net", rcpt: str = "") -> str:
    """An RFC 5322 message with enough words for Bayes, and a unique subject."""
    words = " ".join(secrets.choice(_WORDS) for _ in range(60))
    return (
        f"From: {sender}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@example.net>\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\n\r\n"
        f"{words}\r\n{body_extra}\r\n"
    )


def _reply(seen: Mapping[str, Any], stage: str) -> str:
    answer = seen.get(stage)
    if seen.get("error"):
        return shorten(seen["error"])
    return shorten(f"{answer[0]} {answer[1]}") if answer else "no reply"


def _refused_at(seen: Mapping[str, Any], stage: str, code: int, reason: str) -> bool:
    answer = seen.get(stage)
    return answer is not None and answer[0] == code and reason.lower() in answer[1].lower()


# -- postscreen and restrictions -----------------------------------------------------------------------
def postscreen_said(mail: Connection, verdict: str, address: str | None = None) -> str:
    """postscreen's newest log line with ``verdict`` for a client at ``address`` (any client: None); empty if none."""
    client = f"\\[{re.escape(address)}\\]" if address else "\\["
    pattern = f"{verdict} .* from {client}"
    log = mail.run(["journalctl", "-u", "postfix*", "--since", "-2min", "-o", "cat", "--no-pager", "-g", pattern],
                   check=False, timeout=60).stdout  # fmt: skip
    lines = log.strip().splitlines()
    return re.sub(r"(\]):\d+", r"\1", lines[-1]) if lines else ""  # the client's port differs every time


def screening(part4: Part4, mail: Connection, outside: Connection, target: Target) -> list[CheckResult]:
    """The bot, the listed sender and the sloppy client, each refused for its own reason."""
    return pregreet(part4, mail, outside, target) + blocklisted(part4, outside, target) + restricted(part4, outside)


def pregreet(part4: Part4, mail: Connection, outside: Connection, target: Target) -> list[CheckResult]:
    """A client that talks before the greeting is dropped by postscreen (where the target has a bot to play it)."""
    host = part4.hostname
    senders = target.senders
    if senders is None:
        return [skipped("postscreen", "a client talking before the greeting is dropped", target.without("bot"))]
    bot_address = senders.bot
    bot = _client(outside, {"action": "pregreet", "host": host, "source": bot_address})
    replies = bot.get("replies", [])
    # postscreen answers 521 and closes; the client's unread EHLO can turn the close into a reset that
    # swallows the 521, so the server's own log line says what happened.
    closed = not bot.get("timed_out") and not any(line.startswith("250") for line in replies)
    logged = postscreen_said(mail, "PREGREET", bot_address)
    results = [
        CheckResult(
            "postscreen",
            f"a client talking before the greeting ({bot_address}) is dropped",
            closed and bool(logged),
            f"postscreen logged PREGREET from [{bot_address}], then closed"
            if closed and logged
            else shorten(logged or bot.get("error") or (replies or ["nothing"])[-1]),
            f"{GUIDE} section 1: postscreen_greet_action = drop, and smtp inet runs postscreen",
        )
    ]
    return results


def blocklisted(part4: Part4, outside: Connection, target: Target) -> list[CheckResult]:
    """A client on the block list is refused at RCPT, the list named (where the target has a listed address)."""
    host, rcpt = part4.hostname, part4.part3.part1.mailboxes[0]
    zones = [site.split("*")[0].split("=")[0] for site in part4.blocklists]
    senders = target.senders
    name = "a sender on a block list is refused, the list named"
    if not zones:
        return [skipped("postscreen", name, "no block list configured (BLOCKLISTS is empty)")]
    if senders is None or senders.blocklist not in zones:
        return [skipped("postscreen", name, target.without("listed"))]
    listed_address = senders.listed
    listed = _client(
        outside,
        {"action": "send", "host": host, "source": listed_address, "mail_from": "x@example.net", "rcpt": rcpt},
    )
    results = [
        CheckResult(
            "postscreen",
            f"a sender listed on {senders.blocklist} ({listed_address}) is refused, the list named",
            _refused_at(listed, "rcpt", 550, f"blocked using {senders.blocklist}"),
            _reply(listed, "rcpt"),
            f"{GUIDE} section 2: postscreen_dnsbl_sites and the threshold; "
            f"'dig {'.'.join(reversed(listed_address.split('.')))}.{senders.blocklist}' on the server",
        )
    ]
    return results


def restricted(part4: Part4, outside: Connection) -> list[CheckResult]:
    """Clients and senders no real mail server uses are refused by smtpd's restrictions."""
    host, rcpt = part4.hostname, part4.part3.part1.mailboxes[0]
    results = []
    sloppy = [
        ("a HELO that is not a full host name", {"helo": "localhost"}, 504, "need fully-qualified hostname"),
        ("a sender domain that does not exist", {"mail_from": "x@nowhere.invalid"}, 450, "Domain not found"),
        ("a sender address without a domain", {"mail_from": "x"}, 504, "need fully-qualified address"),
    ]
    for label, change, code, reason in sloppy:
        request = {"action": "send", "host": host, "mail_from": "x@example.net", "rcpt": rcpt, **change}
        seen = _client(outside, request)
        stage = "mail" if _refused_at(seen, "mail", code, reason) else "rcpt"
        results.append(
            CheckResult(
                "restrictions",
                f"{label} is refused ({code})",
                _refused_at(seen, stage, code, reason),
                _reply(seen, stage),
                f"{GUIDE} section 3: smtpd_helo_restrictions and smtpd_sender_restrictions",
            )
        )
    return results


# -- rspamd and Sieve ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Inbound:
    """What :func:`filtering` delivered: the test messages' subjects, and the ordinary message's headers."""

    subjects: dict[str, str]
    headers: str

    def filter_headers(self) -> str:
        """The headers rspamd added to the ordinary message (unfolded), one per line."""
        wanted = ("Authentication-Results", "X-Spamd-Bar", "X-Spam-Status", "X-Spam")
        message = email.message_from_string(self.headers, policy=email.policy.default)
        return "\n".join(f"{name}: {' '.join(str(v).split())}" for name in wanted for v in message.get_all(name, []))


def filtering(part4: Part4, part2: Part2, mail: Connection, outside: Connection) -> tuple[list[CheckResult], Inbound]:
    """GTUBE refused, a spammy message in Junk, an ordinary one in INBOX with the filter's headers.

    rspamd's "add header" test string is switched on only where the server has no internet (the lab: see
    ``options.inc``); elsewhere the Junk rule is proved on the server by Pigeonhole's ``sieve-test``.
    Returns the results and what was delivered (for the learning checks).
    """
    host = part4.hostname
    user = part4.part3.part1.mailboxes[0]
    password = part2.passwords[user].reveal()
    test_strings = part4.offline
    subjects = {"ham": token(), "junk": token(), "trash": token()}
    if not test_strings:
        del subjects["junk"]

    def send(subject: str, extra: str = "") -> dict[str, Any]:
        data = message(subject, extra, rcpt=user)
        return _client(outside, {"action": "send", "host": host, "mail_from": "dana@example.net", "rcpt": user,
                                 "data": data})  # fmt: skip

    gtube = send(token(), GTUBE)
    results = [
        CheckResult(
            "rspamd",
            "GTUBE is refused during the SMTP session (5xx at DATA: the sender is told)",
            bool(gtube.get("data")) and 500 <= gtube["data"][0] < 600,
            _reply(gtube, "data"),
            f"{GUIDE} section 4: rspamd's reject action, and smtpd_milters from part 3",
        )
    ]
    sent = {name: send(subject, GTUBE_ADD_HEADER if name == "junk" else "") for name, subject in subjects.items()}
    for name, seen in sent.items():
        results.append(
            CheckResult(
                "rspamd",
                f"the {name} test message is accepted (250)",
                bool(seen.get("data")) and seen["data"][0] == 250,
                _reply(seen, "data"),
                f"{GUIDE} section 4",
            )
        )
    steps = [
        {"name": "ham_inbox", "folder": "INBOX", "token": subjects["ham"], "wait": 30, "headers": True},
        {"name": "trash_inbox", "folder": "INBOX", "token": subjects["trash"], "wait": 30},
    ]
    if test_strings:
        steps[1:1] = [
            {"name": "junk_junk", "folder": "Junk", "token": subjects["junk"], "wait": 30},
            {"name": "junk_inbox", "folder": "INBOX", "token": subjects["junk"]},
        ]
    found = _client(outside, {"action": "imap", "host": host, "user": user, "password": password, "steps": steps})
    headers = found.get("ham_inbox", {}).get("headers", "")
    auth = re.findall(rf"^Authentication-Results: {re.escape(host)};.*?(?=^\S)", headers, re.M | re.S)
    results += [
        CheckResult(
            "delivery",
            "an ordinary message is in INBOX",
            found.get("ham_inbox", {}).get("found") == 1,
            f"{found.get('ham_inbox', {}).get('found', found.get('error', 0))} found",
            f"{GUIDE} section 5: look at 'journalctl -u dovecot' for the delivery",
        ),
        CheckResult(
            "delivery",
            f"it carries Authentication-Results from {host} and X-Spamd-Bar",
            bool(auth) and "X-Spamd-Bar:" in headers,
            " ".join(sorted(set(re.findall(r"\b(?:spf|dkim|dmarc)=\w+", auth[0]))))
            if auth
            else "none from this server",
            f"{GUIDE} section 4: milter_headers.conf",
        ),
    ]
    if test_strings:
        results.append(
            CheckResult(
                "sieve",
                "a message rspamd marks as spam (add header) is filed into Junk",
                found.get("junk_junk", {}).get("found") == 1 and found.get("junk_inbox", {}).get("found") == 0,
                f"Junk {found.get('junk_junk', {}).get('found')}, INBOX {found.get('junk_inbox', {}).get('found')}",
                f"{GUIDE} section 5: the global script {SIEVE_SCRIPTS['after']} and sieve_after",
            )
        )
    else:
        results += sieve_files_spam(mail)
    return results, Inbound(subjects, headers)


_SIEVE_TEST = """
m=$(mktemp); trap 'rm -f "$m"' EXIT; chmod 644 "$m"  # sieve-test reads it as the mail user
printf 'From: dana@example.net\\nTo: postmaster@example.org\\nSubject: test\\n%s\\n\\nA test.\\n' "$2" > "$m"
sieve-test "$1" "$m"
"""


def sieve_files_spam(mail: Connection) -> list[CheckResult]:
    """Pigeonhole's ``sieve-test`` runs the global script on a message marked as spam and on one that is not."""
    script = f"{SIEVE_DIR}/{SIEVE_SCRIPTS['after']}"
    results = []
    for label, header, folder in (
        ("marked as spam (X-Spam: Yes)", "X-Spam: Yes", "Junk"),
        ("not marked", "", "INBOX"),
    ):
        said = mail.run(["sh", "-c", _SIEVE_TEST, "sh", script, header], timeout=60).stdout
        stored = sorted(set(re.findall(r"store message in folder: (\S+)", said)))
        results.append(
            CheckResult(
                "sieve",
                f"a message {label} is filed into {folder} (sieve-test on the server)",
                stored == [folder],
                ", ".join(stored) or "no folder",
                f"{GUIDE} section 5: the global script {SIEVE_SCRIPTS['after']} and sieve_after",
            )
        )
    return results


def learned(mail: Connection) -> dict[str, int]:
    """How many messages rspamd's Bayes has learned, per class, as Redis/Valkey holds them now.

    ``rspamc stat`` shows the same numbers, but refreshes them only every minute or so.
    """
    cli = "$(command -v valkey-cli || command -v redis-cli)"
    seen = mail.run(["sh", "-c", f"{cli} --raw HMGET {BAYES_COUNTERS} learns_spam learns_ham"], timeout=60).stdout
    numbers = [int(n) if n.strip().isdigit() else 0 for n in seen.split("\n")] + [0, 0]
    return {"spam": numbers[0], "ham": numbers[1]}


def learning(part4: Part4, part2: Part2, mail: Connection, outside: Connection, inbound: Inbound) -> list[CheckResult]:
    """Moves over IMAP teach rspamd: into Junk is spam, out of Junk is ham, Junk to Trash is nothing.

    The messages are ordinary ones (rspamd's test strings short-cut the scan, so they would teach nothing
    and a wrong "learned" could not show): one is marked as spam and then rescued, the other is marked
    as spam and then deleted.
    """
    user, subjects = part4.part3.part1.mailboxes[0], inbound.subjects
    request = {"action": "imap", "host": part4.hostname, "user": user, "password": part2.passwords[user].reveal()}
    moves = [
        ("INBOX -> Junk", "INBOX", subjects["ham"], "Junk", {"spam": 1, "ham": 0}),
        ("Junk -> INBOX", "Junk", subjects["ham"], "INBOX", {"spam": -1, "ham": 1}),
        ("INBOX -> Junk", "INBOX", subjects["trash"], "Junk", {"spam": 1, "ham": 0}),
        ("Junk -> Trash", "Junk", subjects["trash"], "Trash", {"spam": 0, "ham": 0}),
    ]
    results = []
    for label, folder, subject, target, expected in moves:
        before = learned(mail)
        step = {"name": "move", "folder": folder, "token": subject, "move_to": target, "wait": 10}
        seen = _client(outside, {**request, "steps": [step]})
        after = learned(mail)
        change = {k: after[k] - before[k] for k in ("spam", "ham")}
        what = {(1, 0): "learned as spam", (-1, 1): "relearned as ham", (0, 0): "nothing learned"}
        results.append(
            CheckResult(
                "learning",
                f"{label}: {what[(expected['spam'], expected['ham'])]}",
                seen.get("move", {}).get("moved") == "OK" and change == expected,
                f"moved {seen.get('move', {}).get('moved', seen.get('error', 'no'))}; "
                f"spam {change['spam']:+d}, ham {change['ham']:+d}",
                f"{GUIDE} section 6: 'journalctl -u dovecot | grep sieve' shows the learning script's errors",
            )
        )
    return results


def managesieve(part4: Part4, part2: Part2, outside: Connection) -> list[CheckResult]:
    """ManageSieve on 4190: no login before TLS, a login after it, scripts checked by the server."""
    user = part4.part3.part1.mailboxes[0]
    scripts = {"good": 'require "fileinto";\nif header :contains "List-Id" "example" { fileinto "Lists"; }\n',
               "broken": 'require "fileinto";\nif header :contains "List-Id" { fileinto "Lists" }\n'}  # fmt: skip
    seen = _client(
        outside,
        {
            "action": "managesieve",
            "host": part4.hostname,
            "port": MANAGESIEVE_PORT,
            "user": user,
            "password": part2.passwords[user].reveal(),
            "scripts": scripts,
        },
    )
    before = seen.get("before_tls", [])
    sasl_before = next((line for line in before if line.startswith('"SASL"')), '"SASL" ""')
    where = f"{GUIDE} section 5: protocols includes sieve; service managesieve-login"
    return [
        CheckResult(
            "managesieve",
            f"port {MANAGESIEVE_PORT} offers STARTTLS and no login before it",
            '"STARTTLS"' in before and sasl_before == '"SASL" ""',
            seen.get("error") or sasl_before,
            where,
        ),
        CheckResult(
            "managesieve",
            "after STARTTLS (certificate verified) the user logs in",
            seen.get("auth", "").startswith("OK"),
            shorten(seen.get("auth") or seen.get("error", "no answer")),
            where,
        ),
        CheckResult(
            "managesieve",
            "the server checks scripts: a good one passes, a broken one is refused",
            seen.get("good", [""])[-1].startswith("OK") and seen.get("broken", [""])[-1].startswith("NO"),
            shorten(re.sub(r"^NO \S+: ", "NO ", (seen.get("broken") or [seen.get("error", "no answer")])[-1])),
            where,
        ),
    ]


# -- inside the server ----------------------------------------------------------------------------------
def inside(mail: Connection) -> list[CheckResult]:
    """rspamd's and Sieve's own validators, and the controller locked."""
    configtest = mail.run(["rspamadm", "configtest"], check=False, timeout=120)
    results = [
        CheckResult(
            "rspamd",
            "rspamadm configtest",
            configtest.exited == 0 and "syntax OK" in configtest.stdout,
            shorten((configtest.stdout + configtest.stderr).strip().splitlines()[-1]),
            f"{GUIDE} section 4: the file and line rspamadm names",
        )
    ]
    for key, name in SIEVE_SCRIPTS.items():
        flags = [] if key == "after" else [*(a for p in LEARN_PLUGINS for a in ("-P", p)), "-x",
                                           " ".join("+" + e for e in LEARN_EXTENSIONS)]  # fmt: skip
        command = shlex.join(["sievec", *flags, f"{SIEVE_DIR}/{name}"]) + ' "$t" && rm -f -- "$t"'
        seen = mail.run(["sh", "-c", f"t=$(mktemp) && {command}"], check=False, timeout=60)
        results.append(
            CheckResult(
                "sieve",
                f"sievec {SIEVE_DIR}/{name}",
                seen.exited == 0,
                "compiles" if seen.exited == 0 else seen.stderr.strip()[-70:],
                f"{GUIDE} section 5",
            )
        )
    for label, extra in (("no password", []), ("Debian's old default 'q1'", ["-P", "q1"])):
        seen = mail.run(["rspamc", *extra, "-h", f"localhost:{CONTROLLER_PORT}", "stat"], check=False, timeout=60)
        text = (seen.stdout + seen.stderr).strip()
        results.append(
            CheckResult(
                "rspamd",
                f"the controller on localhost:{CONTROLLER_PORT} refuses {label}",
                "401" in text or "Unauthorized" in text,
                shorten(text.splitlines()[-1]) if text else "no answer",
                f"{GUIDE} section 4: override.d/worker-controller.inc (secure_ip cleared, password hash)",
            )
        )
    return results


def verify(part4: Part4, part2: Part2, mail: Connection, outside: Connection, target: Target) -> list[CheckResult]:
    """Every check of part 4, inside and out."""
    results = inside(mail) + screening(part4, mail, outside, target)
    filtered, inbound = filtering(part4, part2, mail, outside)
    results += filtered
    results += learning(part4, part2, mail, outside, inbound)
    results += managesieve(part4, part2, outside)
    return results


def greylisting(part4: Part4, part2: Part2, outside: Connection, delay_seconds: float) -> list[CheckResult]:
    """A suspicious message is told to try again later, refused again at once, accepted after the delay."""
    import time

    user = part4.part3.part1.mailboxes[0]
    subject = token()
    # A sender of its own each time: rspamd lets a sender, recipient and network that once waited through
    # for a day, so a fixed sender would find the demo's second run (or a server restored) already let in.
    sender = f"{subject}@example.net"
    data = message(subject, sender=sender, rcpt=user)
    request = {"action": "send", "host": part4.hostname, "mail_from": sender, "rcpt": user, "data": data}
    first = _client(outside, request)
    again = _client(outside, request)
    time.sleep(delay_seconds + 1)
    later = _client(outside, request)
    where = f"{GUIDE} section 7: greylist.conf and the greylist action in actions.conf"
    found = _client(
        outside,
        {"action": "imap", "host": part4.hostname, "user": user, "password": part2.passwords[user].reveal(),
         "steps": [{"name": "inbox", "folder": "INBOX", "token": subject, "wait": 30}]},
    )  # fmt: skip
    return [
        CheckResult("greylisting", "first attempt: try again later (451)", _refused_at(first, "data", 451, "later"),
                    _reply(first, "data"), where),
        CheckResult("greylisting", "a retry at once: still 451", _refused_at(again, "data", 451, "later"),
                    _reply(again, "data"), where),
        CheckResult("greylisting", "a retry after the delay: accepted and delivered",
                    bool(later.get("data")) and later["data"][0] == 250 and found.get("inbox", {}).get("found") == 1,
                    _reply(later, "data"), where),
    ]  # fmt: skip
