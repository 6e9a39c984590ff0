"""Apply-engine benchmark: idempotent re-apply of a realistic set, side by side with slower ways.

Run as root:  .venv/bin/python bench/apply.py [--release trixie] [--runs 7]

The set: 12 rendered files (1-2 KB each), 20 main.cf settings, 2 lookup tables. Measured on the lab's
mail host (brought up if needed; the mail host is reset afterwards):
  - the first apply (files written, postmap, postconf -e, postfix check, reload);
  - re-apply with nothing to change, three ways in the same run:
      mailkit        all facts in one batched command (TCP_NODELAY on), as the engine does;
      no-nodelay     the same, with Nagle's algorithm left on (paramiko's default);
      per-fact       one SSH command per fact, as tools that check each resource in turn do.
Wall time is the median of --runs; "channels" counts SSH exec/SFTP channels (round trips).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from mailkit import engine
from mailkit.facts import gather
from mailkit.lab.lab import Lab
from mailkit.lab.layout import HOSTS
from mailkit.resources import Directory, File, LookupTable, Packages, Postconf, Resource
from mailkit.ssh import Connection
from mailkit.templates import Templates

TEMPLATE = """# {{ name }}: rendered by mailkit's benchmark for {{ domain }}
{% for i in range(lines) %}
setting_{{ i }} = value {{ i }} for {{ domain }} ({{ name }})
{% endfor %}
"""
SETTINGS = {
    "myorigin": "$mydomain",
    "mydomain": "example.org",
    "myhostname": "mail.$mydomain",
    "mydestination": "$myhostname, localhost.$mydomain, localhost",
    "inet_interfaces": "all",
    "mynetworks": "127.0.0.0/8 [::1]/128",
    "relayhost": "",
    "mailbox_size_limit": "0",
    "recipient_delimiter": "+",
    "virtual_mailbox_domains": "$mydomain b.$mydomain",
    "virtual_mailbox_base": "/var/vmail",
    "virtual_mailbox_limit": "0",
    "virtual_uid_maps": "static:5000",
    "virtual_gid_maps": "static:5000",
    "virtual_mailbox_maps": "lmdb:/etc/postfix/vmailbox",
    "virtual_alias_maps": "lmdb:/etc/postfix/virtual",
    "smtpd_helo_required": "yes",
    "disable_vrfy_command": "yes",
    "delay_warning_time": "4h",
    "message_size_limit": "52428800",
}


def desired() -> list[Resource]:
    templates = Templates()
    files: list[Resource] = [Directory("/etc/mailkit-bench")]
    for i in range(12):
        content = templates.render_string(TEMPLATE, {"name": f"file{i}", "domain": "example.org", "lines": 30 + i * 2})
        files.append(File(f"/etc/mailkit-bench/file{i:02}.conf", content, service="postfix"))
    mailboxes = "".join(f"user{i}@example.org example.org/user{i}/\n" for i in range(20))
    aliases = "".join(f"alias{i}@example.org user{i}@example.org\n" for i in range(20))
    return [
        *files,
        LookupTable("/etc/postfix/vmailbox", mailboxes),
        LookupTable("/etc/postfix/virtual", aliases),
        Postconf(SETTINGS),
    ]


def timed(func: Callable[[], object], conn: Connection, runs: int) -> tuple[float, int]:
    times, channels = [], 0
    for _ in range(runs):
        before = conn.channels_opened
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
        channels = conn.channels_opened - before
    return statistics.median(times), channels


def per_fact_plan(conn: Connection, resources: list[Resource]) -> None:
    """The same comparison with one SSH command per fact."""
    for resource in resources:
        values = [gather(conn, [fact])[0] for fact in resource.facts()]
        assert resource.compare(values) is None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", default="trixie")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    lab = Lab()
    lab.up(args.release)
    ssh_config = lab.ssh_config
    fqdn = HOSTS["mail"].fqdn
    conn = Connection(fqdn, ssh_config=ssh_config)
    preseed = ("postfix postfix/main_mailer_type select Internet Site", "postfix postfix/mailname string " + fqdn)
    engine.apply(conn, [Packages(("postfix", "postfix-lmdb"), preseed=preseed)])
    resources = desired()

    before = conn.channels_opened
    start = time.perf_counter()
    first = engine.apply(conn, resources)
    first_time, first_channels = time.perf_counter() - start, conn.channels_opened - before
    assert first.reloaded == ["postfix"], first

    def reapply(c: Connection) -> Callable[[], object]:
        def run() -> None:
            result = engine.apply(c, resources)
            assert not result.changed and not result.reloaded

        return run

    fast, fast_channels = timed(reapply(conn), conn, args.runs)
    nagle_conn = Connection(fqdn, ssh_config=ssh_config, tcp_nodelay=False)
    nagle, nagle_channels = timed(reapply(nagle_conn), nagle_conn, args.runs)
    per_fact, per_fact_channels = timed(lambda: per_fact_plan(conn, resources), conn, args.runs)

    n_files = sum(isinstance(r, File) for r in resources)
    print(f"mailkit apply benchmark, release {args.release}: {n_files} files, {len(SETTINGS)} main.cf settings, 2 maps")
    print(f"  first apply                 {first_time:7.3f} s  {first_channels:3} channels")
    print("  re-apply, no change:")
    rows = [
        ("mailkit (batched)", fast, fast_channels),
        ("no-nodelay", nagle, nagle_channels),
        ("per-fact", per_fact, per_fact_channels),
    ]
    for name, seconds, channels in rows:
        print(f"    {name:24}  {seconds:7.3f} s  {channels:3} channels  {seconds / fast:6.1f} x mailkit")
    print(
        f"  target: re-apply <= 1 s and a constant number of round trips -> "
        f"{'met' if fast <= 1 and fast_channels == 1 else 'NOT met'}"
    )
    conn.close()
    nagle_conn.close()
    lab.reset()


if __name__ == "__main__":
    main()
