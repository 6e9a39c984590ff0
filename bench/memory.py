"""Memory each mail service uses on the lab's mail host, as proportional set size (PSS), side by side.

Run after the guide, on the lab it leaves up:
    .venv/bin/mailkit guide run --parts 1,2,3 && .venv/bin/python bench/memory.py

PSS counts shared pages once, split among the processes sharing them, so the figures add up to what the
services really take. Read from /proc/<pid>/smaps_rollup of every process in each unit's cgroup.
"""

from __future__ import annotations

from mailkit.lab.lab_target import lab_connection

UNITS = ("postfix", "dovecot", "rspamd")
SCRIPT = r"""
for unit in "$@"; do
    cg=$(systemctl show -p ControlGroup --value "$unit" 2>/dev/null)
    [ -n "$cg" ] || cg=$(systemctl show -p ControlGroup --value "$unit@-" 2>/dev/null)
    kb=0; n=0
    for pid in $(cat "/sys/fs/cgroup$cg/cgroup.procs" 2>/dev/null); do
        p=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null) || continue
        kb=$((kb + ${p:-0})); n=$((n + 1))
    done
    echo "$unit $n $kb"
done
"""


def main() -> None:
    with lab_connection("mail") as mail:
        rows = mail.run(["sh", "-c", SCRIPT, "sh", *UNITS]).stdout.split("\n")
        release = mail.run(["sh", "-c", ". /etc/os-release; echo $VERSION_CODENAME"]).stdout.strip()
    figures = {unit: (int(n), int(kb)) for unit, n, kb in (r.split() for r in rows if r)}
    total = sum(kb for _, kb in figures.values()) or 1
    print(f"memory of the mail services on the lab's mail host (Debian {release}), PSS")
    for unit, (processes, kb) in figures.items():
        print(f"  {unit:8} {processes:3} processes  {kb / 1024:7.1f} MiB  {kb / total:6.1%} of the three")


if __name__ == "__main__":
    main()
