"""Moving in: the mail of an account at a cloud provider brought home with Dovecot's own ``doveadm sync``.

The mail server logs in to the provider over IMAP (Dovecot's ``imapc`` storage, TLS verified) with the account's
*app password* and copies, folder by folder, what is not home yet, with the flags. It is a **one-way** sync (``-1``):
nothing at home is ever deleted or sent back, so mail that arrives at home meanwhile stays, and running it again
copies only what is new (Dovecot keeps the state of each folder). What is left at the provider, and why:

- ``\\All`` (All Mail): every message again, in one folder; brought home, it would be a second copy of everything.
  Messages that are *only* there (archived, with no label) come home into ``Archive`` when the move is finished
  (:func:`plan_finish`, :func:`finish`).
- ``\\Flagged`` (Starred): the flagged messages again; the ``\\Flagged`` flag comes home with each message.
- ``\\Junk`` (Spam) and ``\\Trash``: mail the provider or the user already threw away.

The app password travels on the command's standard input into a file only root can read, for the length of the
run, never on a command line (``ps`` shows command lines to every user).

>>> from mailkit.core.values import Hostname, Password
>>> old = OldAccount(Hostname("imap.cloud.example.net"), EmailAddress("alice@cloud.example.net"), Password("a" * 16))
>>> print(imapc_settings(old, "2.4").replace(old.password.reveal(), "********"))
imapc_host = imap.cloud.example.net
imapc_port = 993
imapc_ssl = imaps
imapc_user = alice@cloud.example.net
imapc_password = "********"
ssl_client_ca_dir = /etc/ssl/certs
mail_prefetch_count = 20
imapc_features = guid-forced
dsync_alt_char = _
ssl_client_require_valid_cert = yes
<BLANKLINE>
>>> sync_command(EmailAddress("alice@example.org"))[-5:]
['-x', '\\\\Trash', '-u', 'alice@example.org', 'imapc:']
"""

from __future__ import annotations

import shlex
from collections import Counter
from dataclasses import dataclass

from mailkit.clients.inventory import Inventory, MessageKey
from mailkit.core.checks import CheckResult
from mailkit.core.engine import STATE_DIR
from mailkit.core.errors import MailkitError
from mailkit.core.imap_names import ALT_CHAR, home_name
from mailkit.core.mail_layout import LAYOUT
from mailkit.core.result import Result
from mailkit.core.ssh import Connection
from mailkit.core.text import shorten
from mailkit.core.values import EmailAddress, Password
from mailkit.guide import cut_syncs
from mailkit.server.old_account import OldAccount

#: The provider's folders left behind, by their RFC 6154 flag, and why (the notebook prints this).
LEFT_AT_PROVIDER: dict[str, str] = {
    "\\All": "every message again: its archived-only ones come home into Archive",
    "\\Flagged": "the flagged messages again: the flag comes home with each message",
    "\\Junk": "what the provider judged spam",
    "\\Trash": "what was deleted",
}
#: The checks' group, and what to do when a sync's check fails.
GROUP = "moving in"
SYNC_FIX = "run the sync again (it copies only what is missing); 'doveadm -v sync ...' says what it does"
#: Where messages that were only in All Mail (archived) come home, and how many UIDs one import asks for.
ARCHIVE = "Archive"
UIDS_PER_IMPORT = 500
#: The config Dovecot runs with for the move: the server's own, plus the provider's login.
DOVECOT_CONF = "/etc/dovecot/dovecot.conf"

#: doveadm's exit codes (doveadm(1)) as a reader would want them said.
_EXIT_CODES = {
    2: "the sync was not complete (something changed during it): run it again",
    65: "the provider sent something Dovecot could not read",
    67: "the user at home does not exist",
    68: "the user at home does not exist",
    75: "a temporary failure (the provider unreachable, or a lock held): run it again",
    77: "the provider refused the login (wrong user or app password?)",
}


#: How Dovecot says that the disk it writes to is full, and what the reader is told then.
_DISK_FULL = ("No space left on device", "Not enough disk space")
DISK_FULL = f"the disk that holds the mail here is full: free space ('df -h {LAYOUT.vmail_base}'), then run it again"


def disk_full(stderr: str) -> bool:
    """Whether doveadm's error output says the disk it wrote to is full."""
    return any(words in stderr for words in _DISK_FULL)


def imapc_settings(account: OldAccount, major: str) -> str:
    """The settings Dovecot ``major`` needs to log in to the provider: IMAP over TLS, its certificate verified."""
    verify = "imapc_ssl_verify = yes" if major == "2.3" else "ssl_client_require_valid_cert = yes"
    return "\n".join(
        [
            f"imapc_host = {account.host}",
            f"imapc_port = {account.port}",
            "imapc_ssl = imaps",
            f"imapc_user = {account.user}",
            f'imapc_password = "{account.password.reveal()}"',
            "ssl_client_ca_dir = /etc/ssl/certs",
            # Ask for 20 messages at a time, not one per round trip: 9.3 s -> 7.6 s for 5,000 (bench/moving_in.py).
            "mail_prefetch_count = 20",
            # A provider's IMAP has no message GUIDs: make them from each message's headers, so a run that stopped
            # half way (the line cut, the disk full) knows what it already copied. Without, the next run copied
            # the messages of the interrupted folder again (tests/lab/test_67_moving_in.py).
            "imapc_features = guid-forced",
            f"dsync_alt_char = {ALT_CHAR}",
            verify,
            "",
        ]
    )


def sync_command(user: EmailAddress) -> list[str]:
    """``doveadm sync``, one way, from the provider (``-R``: the remote side is the source) into ``user``'s mail."""
    excludes = [arg for flag in LEFT_AT_PROVIDER for arg in ("-x", flag)]
    return ["doveadm", "-c", "$CONF", "sync", "-1", "-R", *excludes, "-u", str(user), "imapc:"]


#: Runs a doveadm command with the server's config plus the provider's settings (read from standard input) in a
#: file only root can read, removed when the command ends, however it ends.
_WITH_SETTINGS = """set -u
umask 077
dir=$(mktemp -d)
trap 'rm -rf -- "$dir"' EXIT
CONF="$dir/moving-in.conf"
cat -- "$1" - > "$CONF"
shift
for arg in "$@"; do [ "$arg" = '$CONF' ] && set -- "$@" "$CONF" || set -- "$@" "$arg"; shift; done
"$@"
"""


def run_with_settings(mail: Connection, account: OldAccount, major: str, argv: list[str], timeout: int) -> Result:
    """Run ``argv`` on the mail server with the provider's settings; ``$CONF`` in it names the config file."""
    return mail.run(
        ["sh", "-c", _WITH_SETTINGS, "sh", DOVECOT_CONF, *argv],
        input=imapc_settings(account, major),
        check=False,
        timeout=timeout,
    )


def dovecot_major(mail: Connection) -> str:
    """The server's Dovecot as "2.3" or "2.4": the provider's settings are named differently in each."""
    major = mail.run(["dovecot", "--version"]).stdout.strip()[:3]
    if major not in ("2.3", "2.4"):
        raise MailkitError(f"moving in knows Dovecot 2.3 and 2.4, not {major!r}")
    return major


def clashes(folders: list[str]) -> list[tuple[str, ...]]:
    """Provider folders that would come home under one name (and mix their messages): each group, sorted.

    >>> clashes(["INBOX", "Releases.2024", "Releases_2024", "Work"])
    [('Releases.2024', 'Releases_2024')]
    """
    groups: dict[str, set[str]] = {}
    for name in folders:
        groups.setdefault(home_name(name), set()).add(name)
    return sorted(tuple(sorted(names)) for names in groups.values() if len(names) > 1)


def provider_folders(mail: Connection, account: OldAccount, user: EmailAddress, major: str) -> list[str]:
    """The provider's folders as Dovecot here lists them through ``imapc`` (``/`` between levels), at most 10,000."""
    driver = ["-o", "mail_location=imapc:"] if major == "2.3" else ["-o", "mail_driver=imapc", "-o", "mail_path="]
    argv = ["doveadm", "-c", "$CONF", *driver, "mailbox", "list", "-u", str(user)]
    listed = run_with_settings(mail, account, major, argv, timeout=300)
    if listed.exited != 0:
        raise MailkitError(f"listing the folders at {account.host}: {doveadm_error(listed)}")
    return [line for line in listed.stdout.splitlines()[:10_000] if line.strip()]


def sync(mail: Connection, account: OldAccount, user: EmailAddress, timeout: int = 3600) -> Result:
    """Bring home what is new at the provider (see the module's text); raise with doveadm's words if it fails.
    Refused once the move is finished (:func:`finish`): it would bring the merged folders back. After a run that was
    cut off, the second copies it left behind are removed (:mod:`mailkit.guide.cut_syncs`)."""
    done = mail.run(["cat", "--", finished_marker(user)], check=False)
    if done.exited == 0:
        raise MailkitError(
            f"the move of {user} was finished on {done.stdout.strip()[:40]}: syncing again would bring "
            f"back the provider's folders that finishing merged (remove {finished_marker(user)} "
            "only to start over)"
        )
    major = dovecot_major(mail)
    mixed = clashes(provider_folders(mail, account, user, major))
    if mixed:
        said = "; ".join(
            " and ".join(repr(n) for n in group) + f" would all be {home_name(group[0])!r}" for group in mixed
        )
        raise MailkitError(
            f"folders at {account.host} would come home under one name and mix their messages: {shorten(said, 600)} "
            f"('.' cannot be part of a folder's name here). Rename one of them at the provider, then sync; "
            "nothing was copied"
        )
    result = run_with_settings(mail, account, major, cut_syncs.noted(user, sync_command(user)), timeout)
    if result.exited != 0:
        raise MailkitError(f"doveadm sync from {account.host}: {doveadm_error(result)}")
    cut_syncs.remove_left_behind(mail, user)
    return result


def doveadm_error(result: Result) -> str:
    r"""What went wrong, from doveadm's exit code and its error lines (not its backtraces: Dovecot 2.3 panics after a
    refused login, and its last words are a backtrace).

    >>> doveadm_error(Result("doveadm sync", "", "dsync(a): Error: imapc(h:993): Authentication failed: [AUTH]\n"
    ...               "dsync(a): Panic: file lib-event.c\ndsync(a): Error: Raw backtrace: #0 t_askpass\nAborted", 134))
    'the provider refused the login (wrong user or app password?): imapc(h:993): Authentication failed: [AUTH]'
    """
    lines = [
        line.split(": Error: ", 1)[-1].split(": Fatal: ", 1)[-1]
        for line in result.stderr.splitlines()
        if (": Error: " in line or ": Fatal: " in line) and "backtrace" not in line.lower()
    ]
    if any("Authentication failed" in line for line in lines) or result.exited == 77:
        meaning = _EXIT_CODES[77]
    elif disk_full("\n".join(lines)):
        meaning = DISK_FULL
    else:
        meaning = _EXIT_CODES.get(result.exited, f"it failed (exit {result.exited})")
    said = "; ".join(dict.fromkeys(lines[:3])) or result.stderr.strip()[-300:]
    return f"{meaning}: {shorten(said, 600)}"


# -- the last step, after the final sync: each folder where the mail program looks for it -------------------------


@dataclass(frozen=True)
class Merge:
    """The provider's special folder ``source`` (its copy at home) emptied into the home folder ``into``."""

    source: str
    into: str
    flag: str


@dataclass(frozen=True)
class Finish:
    """What finishing the move does: special folders merged into the server's own, archived messages (only in the
    provider's All Mail) brought into :data:`ARCHIVE` by UID, and the provider's emptied parent folders removed."""

    merges: tuple[Merge, ...]
    all_mail: str | None
    archive_uids: tuple[int, ...]

    def lines(self) -> list[str]:
        """The plan, as the notebook prints it."""
        out = [f"merge {m.source!r} ({m.flag}) into {m.into!r}" for m in self.merges]
        if self.all_mail and self.archive_uids:
            count = len(self.archive_uids)
            out.append(f"bring {count} message(s) found only in {self.all_mail!r} into {ARCHIVE!r}")
        return out or ["no change"]


def plan_finish(source: Inventory, home: Inventory) -> Finish:
    """Which provider folders (as synced home) go into which home folders, and which archived messages come home.

    A provider folder with a special-use flag the server also has (``\\Sent``, ``\\Drafts``) goes into the server's
    folder. A message of All Mail comes into Archive when it is in no other folder the sync brought home and is not
    anywhere at home yet (so finishing twice, or after an interruption, brings nothing twice).
    (Examples: tests/unit/test_moving_in.py.)
    """
    merges = []
    for name, folder in sorted(source.folders.items()):
        here = home_name(name)
        for flag in folder.special_use:
            if flag in LEFT_AT_PROVIDER or here not in home.folders:
                continue
            targets = [t for t in home.with_special_use(flag) if t != here]
            if targets:
                merges.append(Merge(here, targets[0], flag))
    all_mail = next(iter(source.with_special_use("\\All")), None)
    uids: tuple[int, ...] = ()
    if all_mail:
        elsewhere = {
            key
            for name, folder in source.folders.items()
            if not set(folder.special_use) & set(LEFT_AT_PROVIDER)
            for key in (e.key for e in folder.entries)
        }
        at_home = {e.key for folder in home.folders.values() for e in folder.entries}
        wanted = [e for e in source.folders[all_mail].entries if e.key not in elsewhere | at_home]
        uids = tuple(sorted({e.uid for e in wanted}))
    return Finish(tuple(merges), all_mail, uids)


def _uid_set(uids: tuple[int, ...]) -> str:
    """UIDs as an IMAP sequence set, runs joined: ``1:3,7``.

    >>> _uid_set((1, 2, 3, 7, 9, 10))
    '1:3,7,9:10'
    """
    runs: list[list[int]] = []
    for uid in uids:
        if runs and uid == runs[-1][1] + 1:
            runs[-1][1] = uid
        else:
            runs.append([uid, uid])
    return ",".join(f"{a}:{b}" if a != b else str(a) for a, b in runs)


def finished_marker(user: EmailAddress) -> str:
    """Where the server notes that ``user``'s move is finished: a sync after it would bring merged folders back."""
    return f"{STATE_DIR}/moved-in/{user}"


def finish(mail: Connection, account: OldAccount, user: EmailAddress, plan: Finish, timeout: int = 3600) -> None:
    """Carry out ``plan`` (after the final sync); then no sync runs for ``user`` any more."""
    who = ["-u", str(user)]
    if plan.all_mail:
        major = dovecot_major(mail)
        mail.run(["doveadm", "mailbox", "create", *who, ARCHIVE], check=False)
        # By UID, a few hundred per command: a provider limits how long one IMAP command line may be.
        for start in range(0, len(plan.archive_uids), UIDS_PER_IMPORT):
            uids = _uid_set(plan.archive_uids[start : start + UIDS_PER_IMPORT])
            argv = ["doveadm", "-c", "$CONF", "import", *who, "imapc:", "", "mailbox", plan.all_mail, "uid", uids]
            staged = run_with_settings(mail, account, major, argv, timeout)
            if staged.exited != 0:
                raise MailkitError(f"doveadm import from {account.host}: {doveadm_error(staged)}")
        # What came (now, or in a run that stopped half way) goes on from the staging folder into Archive.
        if mail.run(["doveadm", "mailbox", "status", *who, "messages", plan.all_mail], check=False).ok:
            mail.run(["doveadm", "move", *who, ARCHIVE, "mailbox", plan.all_mail, "all"], timeout=timeout)
            mail.run(["doveadm", "mailbox", "delete", *who, plan.all_mail])
    for merge in plan.merges:
        mail.run(["doveadm", "move", *who, merge.into, "mailbox", merge.source, "all"], timeout=timeout)
        mail.run(["doveadm", "mailbox", "delete", *who, merge.source])
    # The provider's parent folders ("[Cloud]"), now empty: removed, only if empty.
    parents = {m.source.rsplit("/", 1)[0] for m in plan.merges if "/" in m.source}
    if plan.all_mail and "/" in plan.all_mail:
        parents.add(plan.all_mail.rsplit("/", 1)[0])
    for parent in sorted(parents):
        mail.run(["doveadm", "mailbox", "delete", "-e", *who, parent], check=False)
    marker = finished_marker(user)
    mail.run(["sh", "-c", 'mkdir -p -- "${1%/*}" && date -u +%FT%TZ > "$1"', "sh", marker])


# -- checks: what a mail program sees, before and after ---------------------------------------------------------


def kept_folders(source: Inventory) -> list[str]:
    """The provider's folders the sync brings home, INBOX first."""
    names = [n for n, f in source.folders.items() if not set(f.special_use) & set(LEFT_AT_PROVIDER)]
    return sorted(names, key=lambda n: (n != "INBOX", n))


def _difference(expected: Counter[MessageKey], found: Counter[MessageKey]) -> str:
    missing, extra = expected - found, found - expected
    parts = [f"{sum(missing.values())} missing"] if missing else []
    parts += [f"{sum(extra.values())} more than expected (doubled?)"] if extra else []
    return ", ".join(parts)


def sync_checks(source: Inventory, before: Inventory, after: Inventory) -> list[CheckResult]:
    """After a sync: each folder the provider shows holds at home what it held there plus what was home before,
    with the same flags; the folders left at the provider did not come.

    >>> from mailkit.clients.inventory import Entry, Folder, MessageKey
    >>> one = Folder((), (Entry(MessageKey("<a@x>", "00"), ("\\\\Seen",), 5),))
    >>> src, empty = Inventory("/", {"INBOX": one}), Inventory("/", {})
    >>> [(r.name, r.ok, r.detail) for r in sync_checks(src, empty, src)]
    [('INBOX', True, '1 message(s), the same flags'), ('left at the provider', True, 'none of its folders came')]
    >>> [(r.name, r.ok, r.detail) for r in sync_checks(src, empty, empty)][0]
    ('INBOX', False, '1 missing')
    """
    rows = []
    for name in kept_folders(source):
        home = home_name(name)
        expected = source.keys(name) + before.keys(home)
        found = after.keys(home)
        home_flags = after.flags(home)
        other_flags = sum(
            1 for key, flags in source.flags(name).items() if key in home_flags and home_flags[key] != flags
        )
        problem = _difference(expected, found) or (f"{other_flags} with other flags" if other_flags else "")
        count = sum(source.keys(name).values())
        said = name if home == name else f"{name} (here {home})"
        rows.append(CheckResult(GROUP, said, not problem, problem or f"{count} message(s), the same flags", SYNC_FIX))
    came = [
        n
        for n, f in source.folders.items()
        if set(f.special_use) & set(LEFT_AT_PROVIDER) and home_name(n) in after.folders
    ]
    rows.append(
        CheckResult(
            GROUP,
            "left at the provider",
            not came,
            f"came home all the same: {', '.join(sorted(came))}" if came else "none of its folders came",
        )
    )
    return rows


def nothing_copied(first: Inventory, second: Inventory) -> CheckResult:
    """A second sync right after the first changes nothing at home."""
    changed = sorted(n for n in set(first.folders) | set(second.folders) if first.keys(n) != second.keys(n))
    detail = f"changed: {', '.join(changed)}" if changed else "no folder changed"
    return CheckResult(GROUP, "a second run copies nothing", not changed, detail, SYNC_FIX)


def arrived_once(home: Inventory, message_id: str, folder: str = "INBOX") -> CheckResult:
    """The message with ``message_id`` (the straggler) is in ``folder`` at home exactly once."""
    count = sum(n for key, n in home.keys(folder).items() if key.message_id == message_id)
    return CheckResult(GROUP, f"{message_id} is home", count == 1, f"{count} time(s) in {folder}", SYNC_FIX)


def finish_checks(source: Inventory, before: Inventory, after: Inventory, plan: Finish) -> list[CheckResult]:
    """After finishing: each merged folder holds its own and the provider's; Archive holds the archived messages
    once; no folder of the provider's is left at home."""
    rows = []
    for merge in plan.merges:
        expected = before.keys(merge.into) + before.keys(merge.source)
        problem = _difference(expected, after.keys(merge.into))
        rows.append(
            CheckResult(GROUP, f"{merge.source} in {merge.into}", not problem, problem or "every message, once")
        )
    if plan.all_mail:
        wanted = Counter({e.key: 1 for e in source.folders[plan.all_mail].entries if e.uid in set(plan.archive_uids)})
        problem = _difference(wanted + before.keys(ARCHIVE), after.keys(ARCHIVE))
        detail = problem or f"{len(wanted)} archived message(s), once"
        rows.append(CheckResult(GROUP, f"{ARCHIVE}: what was only in {plan.all_mail}", not problem, detail))
    left = sorted(m.source for m in plan.merges if m.source in after.folders)
    rows.append(CheckResult(GROUP, "merged folders removed", not left, ", ".join(left) or "none left"))
    return rows


def folder_table(source: Inventory) -> str:
    """The provider's folders as the notebook shows them: special use, messages, and whether each comes home.

    >>> from mailkit.clients.inventory import Folder
    >>> print(folder_table(Inventory("/", {"INBOX": Folder((), ()), "[C]/All": Folder(("\\\\All",), ())})))
    folder                special use  messages  comes home
    INBOX                                     0  yes
    [C]/All               \\All                0  no: every message again: its archived-only ones come home into Archive
    """
    lines = [f"{'folder':<22}{'special use':<13}{'messages':>8}  comes home"]
    for name in sorted(source.folders, key=lambda n: (n != "INBOX", n)):
        folder = source.folders[name]
        left = [LEFT_AT_PROVIDER[f] for f in folder.special_use if f in LEFT_AT_PROVIDER]
        verdict = f"no: {left[0]}" if left else "yes" if home_name(name) == name else f"yes, as {home_name(name)}"
        lines.append(f"{name:<22}{' '.join(folder.special_use):<13}{len(folder.entries):>8}  {verdict}")
    return "\n".join(lines)


def by_hand(account: OldAccount, user: EmailAddress) -> str:
    """The commands a person types on the server for the sync, for both Dovecot versions (the password left out).

    >>> from mailkit.core.values import Hostname, Password
    >>> text = by_hand(OldAccount(Hostname("imap.example.net"), EmailAddress("a@example.net"), Password("x" * 16)),
    ...                EmailAddress("alice@example.org"))
    >>> "x" * 16 in text, "imapc_password = \\"APP-PASSWORD\\"" in text
    (False, True)
    """
    shown = OldAccount(account.host, account.user, _PLACEHOLDER, account.port)
    command = " ".join(shlex.quote(a) for a in sync_command(user)).replace("'$CONF'", "/root/moving-in.conf")
    common = imapc_settings(shown, "2.4").splitlines()[:-1]
    out = [
        "# As root, in a file only root reads: the server's configuration plus the provider's login.",
        "umask 077; cp /etc/dovecot/dovecot.conf /root/moving-in.conf; cat >> /root/moving-in.conf <<'EOF'",
        *common,
        "EOF",
        "# Verify the provider's certificate. Dovecot 2.4 (trixie):",
        "echo 'ssl_client_require_valid_cert = yes' >> /root/moving-in.conf",
        "# or Dovecot 2.3 (bookworm): echo 'imapc_ssl_verify = yes' >> /root/moving-in.conf",
        "# Then, each time (a first sync, the final one):",
        command,
        "# And when the move is done:",
        "shred -u /root/moving-in.conf",
    ]
    return "\n".join(out)


_PLACEHOLDER = Password("APP-PASSWORD")
