"""The backup host in the lab: the outside host as a storage box would be, on an address and name of its own
(``backup.example.net``, 198.51.100.72): an account ``borg`` with ``borg`` installed, reached over SSH, whose
``authorized_keys`` a reader fills with the line the backups chapter prints (a storage box takes it on its web
page; a second server of one's own in ``~borg/.ssh/authorized_keys``, as here).

The chapter knows only the host name, the account, the path and the host key, as it would of any provider
(:class:`mailkit.server.backup_space.BackupSpace`).
"""

from __future__ import annotations

import shlex

from mailkit.core.ssh import Connection
from mailkit.core.values import Hostname
from mailkit.server.backup_space import BackupSpace, public_key_line

HOST = "backup.example.net"
USER = "borg"
HOME = "/srv/backups"


def setup(outside: Connection, host_key: str, path: str) -> BackupSpace:
    """The account on the outside host (borg is in its image); the repository at ``path`` (in its home) removed,
    so every test and every notebook run starts from an empty backup host."""
    script = f"""set -eu
id {USER} >/dev/null 2>&1 || useradd --system --create-home --home-dir {HOME} --shell /bin/sh {USER}
install -d -m 0700 -o {USER} -g {USER} {HOME}/.ssh
rm -rf -- {HOME}/{shlex.quote(path)}
: > {HOME}/.ssh/authorized_keys
chown {USER}:{USER} {HOME}/.ssh/authorized_keys && chmod 0600 {HOME}/.ssh/authorized_keys
"""
    outside.run(["sh", "-c", script])
    return BackupSpace(Hostname(HOST), USER, path, public_key_line(host_key, "the outside host's key"))


def authorize(outside: Connection, line: str) -> None:
    """The backup host takes the server's key with the restrictions in ``line`` (its one line: replaced)."""
    if "\n" in line or not line.startswith('command="borg serve --append-only '):
        raise ValueError("only an append-only borg line is put at the lab's backup host")
    outside.run(
        ["sh", "-c", f"cat > {HOME}/.ssh/authorized_keys && chown {USER}:{USER} {HOME}/.ssh/authorized_keys"],
        input=line + "\n",
    )


def repository_size(outside: Connection, path: str) -> int:
    """Bytes the repository takes on the backup host (what an attacker with the server's key would want gone)."""
    found = outside.run(["du", "-sb", "--", f"{HOME}/{path}"], check=False)
    return int(found.stdout.split()[0]) if found.ok and found.stdout.split()[0].isdigit() else 0
