"""The restore drill (backups chapter, section 6): a lost server rebuilt from its backup on a new one with the same
name and addresses, the DNS left as it is.

The order matters. The new server first gets the guide's packages (Debian's own configuration, not yet the
guide's), borg with a *new* SSH key (the old one went with the old server: the backup host is given the new line)
and the repository's passphrase from where you kept it. Then the newest archive is extracted over the fresh files,
the Bayes data is put back through Redis/Valkey, and every service restarts on what came back. Last, the guide's
whole desired state is planned: a good restore leaves it nothing to change.

>>> print(restore_script())  # doctest: +ELLIPSIS
set -eu
...
borg extract --exclude etc/mailkit/backup "::$1" || [ $? -le 1 ]  # 1: a warning, the files are back
...
"""

from __future__ import annotations

from mailkit.core.context import HostFacts
from mailkit.core.errors import MailkitError, UsageError
from mailkit.core.mail_layout import LAYOUT
from mailkit.core.resources import Packages, Resource, SystemAccount
from mailkit.core.ssh import Connection
from mailkit.guide import backups, dane, firewall, guessing, mta_sts
from mailkit.guide.parts import Parts

#: What the archive brings back that systemd and the services must see: restarted in this order, if present
#: (Unbound before Postfix, which copies resolv.conf into its jail when it starts; Postfix before Dovecot, whose
#: LMTP and auth sockets live in Postfix's queue directory).
SERVICES = (
    "nftables", "unbound", "valkey-server", "redis-server", "rspamd", "postfix", "dovecot", "fail2ban", "nginx",
)  # fmt: skip


#: Postfix installed without a configuration of its own, so it does not start: until the archive's main.cf is
#: back, a sender retrying finds port 25 closed and keeps the mail queued. (Debian's "Internet Site" would answer,
#: refuse the domain as not its own, and the sender would return the mail to its author: lost to you.)
HOLD_MAIL = ("postfix postfix/main_mailer_type select No configuration",)


def packages(guide: Parts, facts: HostFacts) -> list[Resource]:
    """Every package the guide installs (parts 1-4, the server's validating resolver and the MTA-STS policies' web
    server, the firewall, the guessers' ban, borg) and the accounts it makes
    (part 1's ``vmail``, with its numbers: the Maildirs come back owned by them), none of its settings: what a new
    server needs before the archive's files come back over Debian's own."""
    parts = [*guide.part1.install(), *guide.part2.install(), *guide.part3.install(), *guide.part4.install(facts)]
    installs = [r for r in parts if isinstance(r, Packages)]
    names = (
        *(n for r in installs for n in r.names),
        *dane.PACKAGES,
        *mta_sts.PACKAGES,
        *firewall.PACKAGES,
        *guessing.PACKAGES,
        *backups.PACKAGES,
    )
    accounts = [r for r in guide.part1.everything() if isinstance(r, SystemAccount)]
    return [Packages(names, preseed=HOLD_MAIL), *accounts]


def restore_script() -> str:
    """Root's shell text: the archive (``$1``) extracted at ``/`` (without the backup's own settings: this server
    has its own key now), the Redis/Valkey dump put where the server loads it from, services restarted."""
    services = " ".join(SERVICES)
    return f"""set -eu
set -a
. {backups.ENV_FILE}
set +a
cd /
borg extract --exclude etc/mailkit/backup "::$1" || [ $? -le 1 ]  # 1: a warning, the files are back
for cli in valkey-cli redis-cli; do
    command -v "$cli" >/dev/null 2>&1 || continue
    [ -s {backups.DUMPS}/redis.rdb ] || break
    unit=${{cli%-cli}}-server
    dir=$("$cli" config get dir | tail -n 1)
    file=$("$cli" config get dbfilename | tail -n 1)
    owner=$(stat -c %U -- "$dir")
    systemctl stop "$unit"
    install -o "$owner" -g "$owner" -m 0660 -- {backups.DUMPS}/redis.rdb "$dir/$file"
    systemctl start "$unit"
    break
done
systemctl daemon-reload
# Postfix installed without a configuration has no queue directories yet: its check makes them.
if command -v postfix >/dev/null 2>&1; then postfix check; fi
for unit in {services}; do
    systemctl cat "$unit.service" >/dev/null 2>&1 || continue
    systemctl enable --quiet "$unit"
    systemctl reset-failed "$unit" 2>/dev/null || true  # a first start before its files were back may have failed
    systemctl restart "$unit"
done"""


#: Finds a message in the Maildirs (a file in a ``cur`` or ``new`` directory): a server that has mail already.
HAS_MAIL = f"find {LAYOUT.vmail_base} -type f \\( -path '*/cur/*' -o -path '*/new/*' \\) -print -quit 2>/dev/null"


def restore(mail: Connection, archive: str | None = None, replace_mail: bool = False) -> str:
    """The newest archive (or ``archive``) back on this server; what was restored, in words.

    A server that has mail already is refused: the archive's Maildirs would be laid over its own, and a message in
    both would be there twice. ``replace_mail``: its Maildirs are moved aside first (kept, named with the time),
    and only the archive's come back."""
    name = backups.archive_name(archive or backups.newest_archive(backups.borg(mail, "list", "--json")[1])[0])
    found = mail.run(["sh", "-c", HAS_MAIL], check=False).stdout.strip()
    if found and not replace_mail:
        raise UsageError(
            f"this server has mail already ({found[:200]}): a restore would put the archive's beside it, twice "
            "where both have a message. Restore onto a new server, or pass replace_mail=True to move its "
            f"Maildirs aside ({LAYOUT.vmail_base}.before-restore-TIME) first"
        )
    if found:
        aside = f'mv -- {LAYOUT.vmail_base} "{LAYOUT.vmail_base}.before-restore-$(date +%Y%m%d%H%M%S)"'
        mail.run(["sh", "-c", aside])
    done = mail.run(["sh", "-c", restore_script(), "sh", name], check=False, timeout=3600)
    if not done.ok:
        raise MailkitError(f"the restore of {name} failed: {done.stderr.strip()[-600:]}", done)
    return "the newest archive is back in place, every service restarted on it"
