"""Moving in: the mail of an account at a cloud provider brought home with Dovecot's own ``doveadm sync``.

The mail server logs in to the provider over IMAP (Dovecot's ``imapc`` storage, TLS verified) with the account's
*app password* and copies, folder by folder, what is not home yet, with the flags. It is a **one-way** sync (``-1``):
nothing at home is ever deleted or sent back, so mail that arrives at home meanwhile stays, and running it again
copies only what is new (Dovecot keeps the state of each folder). What is left at the provider, and why:

- ``\\All`` (All Mail): every message again, in one folder; brought home, it would be a second copy of everything.
  Messages that are *only* there (archived, with no label) come home into ``Archive`` (:func:`archive_only`).
- ``\\Flagged`` (Starred): the flagged messages again; the ``\\Flagged`` flag comes home with each message.
- ``\\Junk`` (Spam) and ``\\Trash``: mail the provider or the user already threw away.

The app password travels on the command's standard input into a file only root can read, for the length of the
run, never on a command line (``ps`` shows command lines to every user).

>>> old = OldAccount(Hostname("imap.cloud.example.net"), EmailAddress("alice@cloud.example.net"), Password("a" * 16))
>>> print(imapc_settings(old, "2.4").replace(old.password.reveal(), "********"))
imapc_host = imap.cloud.example.net
imapc_port = 993
imapc_ssl = imaps
imapc_user = alice@cloud.example.net
imapc_password = "********"
ssl_client_ca_dir = /etc/ssl/certs
ssl_client_require_valid_cert = yes
<BLANKLINE>
>>> sync_command(EmailAddress("alice@example.org"))[-5:]
['-x', '\\\\Trash', '-u', 'alice@example.org', 'imapc:']
"""

from __future__ import annotations

from dataclasses import dataclass

from mailkit.clients.inventory import Inventory
from mailkit.core.engine import STATE_DIR
from mailkit.core.errors import MailkitError
from mailkit.core.result import Result
from mailkit.core.ssh import Connection
from mailkit.core.values import EmailAddress, Hostname, Password, ValueRejected

#: The provider's folders left behind, by their RFC 6154 flag, and why (the notebook prints this).
LEFT_AT_PROVIDER: dict[str, str] = {
    "\\All": "every message again: its archived-only ones come home into Archive",
    "\\Flagged": "the flagged messages again: the flag comes home with each message",
    "\\Junk": "what the provider judged spam",
    "\\Trash": "what was deleted",
}
#: Where messages that were only in All Mail (archived) come home.
ARCHIVE = "Archive"
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


@dataclass(frozen=True)
class OldAccount:
    """The account to move out of: the provider's IMAP server, the login, its app password.

    >>> OldAccount(Hostname("imap.cloud.example.net"), EmailAddress("a@cloud.example.net"), Password("100% secret!"))
    Traceback (most recent call last):
    mailkit.core.values.ValueRejected: app password: '********' contains '%', which Dovecot's settings would read \
as a variable: make an app password without it
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
    script = _WITH_SETTINGS
    return mail.run(
        ["sh", "-c", script, "sh", DOVECOT_CONF, *argv],
        input=imapc_settings(account, major),
        check=False,
        timeout=timeout,
    )


def dovecot_major(mail: Connection) -> str:
    major = mail.run(["dovecot", "--version"]).stdout.strip()[:3]
    if major not in ("2.3", "2.4"):
        raise MailkitError(f"moving in knows Dovecot 2.3 and 2.4, not {major!r}")
    return major


def sync(mail: Connection, account: OldAccount, user: EmailAddress, timeout: int = 3600) -> Result:
    """Bring home what is new at the provider (see the module's text); raise with doveadm's words if it fails.
    Refused once the move is finished (:func:`finish`): it would bring the merged folders back."""
    done = mail.run(["cat", "--", finished_marker(user)], check=False)
    if done.exited == 0:
        raise MailkitError(
            f"the move of {user} was finished on {done.stdout.strip()[:40]}: syncing again would bring "
            f"back the provider's folders that finishing merged (remove {finished_marker(user)} "
            "only to start over)"
        )
    result = run_with_settings(mail, account, dovecot_major(mail), sync_command(user), timeout)
    if result.exited != 0:
        meaning = _EXIT_CODES.get(result.exited, "it failed")
        raise MailkitError(f"doveadm sync from {account.host}: {meaning}: {result.stderr.strip()[-600:]}")
    return result


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
        if self.all_mail:
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
        for flag in folder.special_use:
            if flag in LEFT_AT_PROVIDER or name not in home.folders:
                continue
            targets = [t for t in home.with_special_use(flag) if t != name]
            if targets:
                merges.append(Merge(name, targets[0], flag))
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
    return Finish(tuple(merges), all_mail if uids else None, uids)


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
    if plan.all_mail and plan.archive_uids:
        mail.run(["doveadm", "mailbox", "create", *who, ARCHIVE], check=False)
        staged = run_with_settings(
            mail,
            account,
            dovecot_major(mail),
            [
                "doveadm",
                "-c",
                "$CONF",
                "import",
                *who,
                "imapc:",
                "",
                "mailbox",
                plan.all_mail,
                "uid",
                _uid_set(plan.archive_uids),
            ],
            timeout,
        )
        if staged.exited != 0:
            raise MailkitError(f"doveadm import from {account.host}: {staged.stderr.strip()[-600:]}")
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
