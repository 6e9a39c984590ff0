"""What the backups chapter costs (issue 19, item 5): the first backup, a nightly one after a day's mail, and a
restore, next to the floor of any backup over SSH, side by side in one run.

Run as root on a lab whose mail host has parts 1-4 (``mailkit lab reset --to-part 4``):
    .venv/bin/python bench/backups.py [--messages 5000] [--large 4] [--runs 2]

Each run: the mail host is reset to part 4, alice's Maildir is filled with the generated cloud account
(``--messages``, ``--large`` of them with a 10-25 MB attachment: the moving-in chapter's account, moved in), the
backup host is emptied and the chapter's backup set up; then

- **floor**: ``tar`` of the same paths piped over SSH into ``cat > /dev/null`` at the backup host (reading it all
  and sending it once: the least any off-site backup does; no compression, no encryption, nothing kept);
- **first backup**: ``systemctl start mailkit-backup`` (the Redis/Valkey dump, then ``borg create``: chunking,
  compression, encryption, sending);
- **nightly backup**: 50 new messages later, the same again (what each night costs);
- **restore**: ``borg extract`` of the newest archive into an empty directory on the mail host.

Printed: seconds of each and their ratio to the floor, MB read, the repository's size at the backup host after each
backup. The mail host is left at part 4 with backups set up.
"""

from __future__ import annotations

import argparse
import statistics
import time

from mailkit.core import engine
from mailkit.core.ssh import Connection
from mailkit.guide import backups
from mailkit.lab import backup_host, cloud_account, cloud_provider
from mailkit.lab.lab import Lab
from mailkit.lab.lab_target import lab_connection, make

PATH = "mail.example.org"
MAILDIR = "/var/vmail/example.org/alice"
FLOOR_KEY = "/root/.ssh/bench_floor"
#: The restore, timed: the newest archive into an empty directory.
EXTRACT = (
    f"set -a; . {backups.ENV_FILE}; set +a; rm -rf /var/tmp/r && mkdir /var/tmp/r && cd /var/tmp/r && "
    'borg extract "::$(borg list --last 1 --short)"'
)


def _seed(mail: Connection, tar: bytes) -> None:
    mail.run(["sh", "-c", f"tar -x -C {MAILDIR} && chown -R vmail:vmail {MAILDIR}"], input=tar, timeout=600)


def _floor_access(mail: Connection, outside: Connection) -> None:
    """A second key for the bench, which the backup host lets run ``cat > /dev/null`` only."""
    mail.run(["sh", "-c", f"rm -f {FLOOR_KEY} {FLOOR_KEY}.pub && ssh-keygen -q -t ed25519 -N '' -f {FLOOR_KEY}"])
    public = mail.run(["cat", f"{FLOOR_KEY}.pub"]).stdout.strip()
    line = f'command="cat > /dev/null",restrict {public}\n'
    outside.run(["sh", "-c", f"cat >> {backup_host.HOME}/.ssh/authorized_keys"], input=line)


def _timed(action: object) -> float:
    started = time.monotonic()
    action()  # type: ignore[operator]
    return time.monotonic() - started


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--messages", type=int, default=5000, help="messages in alice's Maildir (default 5000)")
    args.add_argument("--large", type=int, default=4, help="of them with a 10-25 MB attachment (default 4)")
    args.add_argument("--runs", type=int, default=2, help="runs (default 2)")
    options = args.parse_args()
    lab = Lab()
    tar = cloud_provider.maildir_tar(cloud_account.generate(count=options.messages, seed=1, large=options.large), ".")
    later = cloud_provider.maildir_tar(cloud_account.generate(count=50, seed=9), ".")
    paths = " ".join(backups.BACKED_UP)
    floor_cmd = (
        f"tar -C / -cf - $(for p in {paths}; do [ -e $p ] && echo ${{p#/}}; done) | ssh -i {FLOOR_KEY} "
        f"-o UserKnownHostsFile={backups.KNOWN_HOSTS} -o BatchMode=yes {backup_host.USER}@{backup_host.HOST}"
    )
    rows: dict[str, list[float]] = {"floor": [], "first backup": [], "nightly backup": [], "restore": []}
    sizes: dict[str, list[int]] = {"first backup": [], "nightly backup": []}
    read_mb = 0.0
    for _ in range(options.runs):
        lab.reset(to_part=4)
        target = make("mail")
        with lab_connection("mail") as mail, lab_connection("outside") as outside:
            _seed(mail, tar)
            space = target.backup_space(backup_host.HOST, backup_host.USER, PATH, "", outside=outside)
            engine.apply(mail, backups.install(space))
            target.authorize_backup_key(outside, space, backups.authorization(mail, space, "mail.example.org"))
            backups.initialize(mail)
            _floor_access(mail, outside)
            read_mb = int(mail.run(["sh", "-c", f"du -sb {MAILDIR} | cut -f1"]).stdout) / 1e6
            rows["floor"].append(_timed(lambda: mail.run(["sh", "-c", floor_cmd], timeout=3600)))
            rows["first backup"].append(_timed(lambda: backups.back_up_now(mail)))
            sizes["first backup"].append(backup_host.repository_size(outside, PATH))
            _seed(mail, later)
            rows["nightly backup"].append(_timed(lambda: backups.back_up_now(mail)))
            sizes["nightly backup"].append(backup_host.repository_size(outside, PATH))
            rows["restore"].append(_timed(lambda: mail.run(["sh", "-c", EXTRACT], timeout=3600)))
            mail.run(["rm", "-rf", "/var/tmp/r"])
    floor = statistics.median(rows["floor"])
    print(f"backups of alice's Maildir, {options.messages} messages ({read_mb:.0f} MB), {options.runs} run(s), median:")
    for name, seconds in rows.items():
        size = f", repository {statistics.median(sizes[name]) / 1e6:.0f} MB" if name in sizes else ""
        print(
            f"  {name:<15} {statistics.median(seconds):7.2f} s  {statistics.median(seconds) / floor:5.2f}x floor{size}"
        )


if __name__ == "__main__":
    main()
