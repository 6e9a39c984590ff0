"""SMTP probes from another host with swaks, and the SMTP checks of the guide built on them.

Probes run on the *outside* host (a real client on another machine); the parser is pure.

>>> t = "-> RCPT TO:<a@other.test>\\n<** 554 5.7.1 <a@other.test>: Relay access denied\\n"
>>> parse_transcript(t)["RCPT"]
SmtpReply(code=554, text='5.7.1 <a@other.test>: Relay access denied')
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

from mailkit.core.checks import CheckResult
from mailkit.core.errors import MailkitError
from mailkit.core.ssh import Connection
from mailkit.core.text import shorten

_STAGES = {"EHLO": "EHLO", "HELO": "HELO", "MAIL FROM": "MAIL", "RCPT TO": "RCPT", "DATA": "DATA", "QUIT": "QUIT"}
_REPLY = re.compile(r"^<(?:-|\*\*|~)\s+(\d{3})[ -](.*)$")


@dataclass(frozen=True)
class SmtpReply:
    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


def parse_transcript(transcript: str) -> dict[str, SmtpReply]:
    """The last reply line to each command of a swaks transcript, by stage (EHLO, MAIL, RCPT, DATA, QUIT).

    The message body's end (``-> .``) is where the DATA stage's final reply comes from.
    """
    replies: dict[str, SmtpReply] = {}
    stage = "CONNECT"
    for line in transcript.splitlines():
        if line.startswith(("-> ", " -> ", "~> ")):
            command = line.split(">", 1)[1].strip()
            if command == ".":
                stage = "DATA-END"
                continue
            for prefix, name in _STAGES.items():
                if command.upper().startswith(prefix):
                    stage = name
                    break
            continue
        match = _REPLY.match(line)
        if match:
            replies[stage] = SmtpReply(int(match.group(1)), match.group(2).strip())
    return replies


@dataclass(frozen=True)
class Probe:
    """One SMTP conversation from the outside host and the replies it got."""

    rcpt: str
    replies: dict[str, SmtpReply]
    transcript: str

    def reply(self, stage: str) -> SmtpReply | None:
        return self.replies.get(stage)

    def last_words(self) -> str:
        r"""The conversation's last reply or error, for a check that got no reply where it expected one.

        >>> Probe("a@example.org", {}, "=== Trying mail.example.org:25...\n*** Timeout (30 secs)").last_words()
        '*** Timeout (30 secs)'
        """
        said = [line.strip() for line in self.transcript.splitlines() if line.strip().startswith(("<-", "<**", "***"))]
        return shorten(said[-1], 120) if said else "nothing"

    def envelope(self) -> str:
        """The MAIL and RCPT part of the transcript: what the article shows (stable across releases)."""
        keep, lines = False, []
        for line in self.transcript.splitlines():
            if line.startswith(" -> MAIL") or line.startswith("-> MAIL"):
                keep = True
            if keep and line.strip().startswith(("->", "<-", "<**")):
                if line.strip().startswith("-> QUIT"):
                    break
                lines.append(line.strip())
        return "\n".join(lines)


def probe(
    outside: Connection,
    server: str,
    rcpt: str,
    *,
    mail_from: str = "probe@outside.example.net",
    port: int = 25,
    quit_after: str | None = "RCPT",
    subject: str = "mailkit probe",
    body: str = "Sent by mailkit's checks.",
    family: int | None = None,
) -> Probe:
    """Talk SMTP to ``server`` from ``outside`` with swaks (stopping after RCPT unless ``quit_after`` is None).

    ``family`` 4 or 6 connects over that IP version only (swaks -4/-6), to check each address of a name.
    """
    argv = [
        "swaks",
        "--server",
        server,
        "--port",
        str(port),
        "--from",
        mail_from,
        "--to",
        rcpt,
        "--helo",
        "outside.example.net",
        "--timeout",
        "30",
        "--header",
        f"Subject: {subject}",
        "--body",
        body,
    ]
    if quit_after:
        argv += ["--quit-after", quit_after]
    if family is not None:
        if family not in (4, 6):
            raise ValueError(f"family must be 4 or 6, not {family}")
        argv.append(f"-{family}")
    result = outside.run(argv, check=False, timeout=90)
    if result.exited not in (0, 23, 24, 25, 26, 27, 28, 29):
        raise MailkitError(f"swaks could not talk to {server}:{port} (exit {result.exited}): {result.stderr.strip()}")
    return Probe(rcpt, parse_transcript(result.stdout), result.stdout)


#: The classic ways to sneak a relay through a badly configured server, after the original article.
def relay_tricks(domain: str, other: str = "other.test") -> list[tuple[str, str, str]]:
    """(label, MAIL FROM, RCPT TO) for each trick; every one must be refused."""
    return [
        ("foreign recipient", "probe@outside.example.net", f"victim@{other}"),
        ("percent hack", "probe@outside.example.net", f"victim%{other}@{domain}"),
        ("quoted local part", "probe@outside.example.net", f'"victim@{other}"@{domain}'),
        ("two @ signs", "probe@outside.example.net", f"victim@{other}@{domain}"),
        ("source route", "probe@outside.example.net", f"@{domain}:victim@{other}"),
        ("forged local sender", f"postmaster@{domain}", f"victim@{other}"),
        ("bang path", "probe@outside.example.net", f"{other}!victim@{domain}"),
    ]


def check_refused(
    outside: Connection,
    server: str,
    label: str,
    rcpt: str,
    *,
    mail_from: str = "probe@outside.example.net",
    code: int,
    text: str,
    group: str,
    fix: str = "",
) -> CheckResult:
    """The server must refuse ``rcpt`` with exactly ``code`` and a reply containing ``text``."""
    talked = probe(outside, server, rcpt, mail_from=mail_from)
    reply = talked.reply("RCPT")
    ok = reply is not None and reply.code == code and text in reply.text
    seen = str(reply) if reply else f"no reply to RCPT; last: {talked.last_words()}"
    return CheckResult(group, f"{label}: RCPT TO:<{rcpt}> refused", ok, seen, fix)


def check_delivered(
    outside: Connection,
    mail: Connection,
    server: str,
    rcpt: str,
    maildir: str,
    *,
    owner: str = "vmail",
    group: str,
    label: str = "",
    fix: str = "",
    timeout: float = 20,
    family: int | None = None,
) -> CheckResult:
    """Send a message to ``rcpt`` and find it in ``maildir``/new on the mail host, owned by ``owner``."""
    token = secrets.token_hex(8)
    name = label or f"{rcpt} delivered"
    sent = probe(outside, server, rcpt, quit_after=None, subject=f"mailkit check {token}", family=family)
    accepted = sent.reply("DATA-END")
    if accepted is None or accepted.code != 250:
        rcpt_reply = sent.reply("RCPT")
        seen = str(rcpt_reply if rcpt_reply and rcpt_reply.code != 250 else accepted or "no reply")
        return CheckResult(group, name, False, seen, fix)
    found = find_in_maildir(mail, maildir, f"mailkit check {token}", timeout)
    if not found:
        # Accepted: the address exists, so the map is not the problem; the log has the message's path.
        queue_id = re.search(r"queued as (\w+)", str(accepted))
        where = f"\"journalctl -u 'postfix*' -u dovecot -g {queue_id.group(1)}\"" if queue_id else "the mail log"
        seen = f"accepted (250) but not in {maildir} (new/ or cur/) after {timeout:.0f} s"
        return CheckResult(group, name, False, seen, f"Postfix took it: {where} on the server says where it went")
    file_owner = mail.run(["stat", "-c", "%U", found]).stdout.strip()
    ok = file_owner == owner
    return CheckResult(group, name, ok, f"250, in {found.rsplit('/', 1)[0]}, owned by {file_owner}", fix)


def find_in_maildir(mail: Connection, maildir: str, text: str, timeout: float = 20) -> str:
    """The path of the message in ``maildir``'s INBOX that contains ``text``, waiting for it; "" if none came.

    Delivered mail is in ``new/``; Dovecot 2.4.5 (sid) files it straight into ``cur/`` when it sets a keyword at
    delivery (``$HasNoAttachment``), as a mail program's reading does later: both are the INBOX.
    """
    deadline = time.monotonic() + timeout
    while True:
        search = mail.run(["grep", "-rlF", "--", text, f"{maildir}/new", f"{maildir}/cur"], check=False)
        if search.ok and search.stdout.strip():
            return search.stdout.strip().splitlines()[0]
        if time.monotonic() > deadline:
            return ""
        time.sleep(0.2)


def greeting(conn: Connection, host: str, port: int = 25, seconds: int = 8) -> str:
    """The first line a mail server at ``host``:``port`` sends when ``conn``'s host connects ("" when none came
    within ``seconds``): whether the server can reach it at all, as a provider's block would stop it.
    """
    # One line, at most 512 characters: a server that never ends its line cannot make it grow.
    script = 'exec 3<>"/dev/tcp/$1/$2" && IFS= read -r -n 512 line <&3 && printf "%s" "${line%$(printf "\\r")}"'
    seen = conn.run(["timeout", str(seconds), "bash", "-c", script, "bash", host, str(port)], check=False)
    return seen.stdout.strip() if seen.ok else ""
