"""What part 4's content filter costs: time rspamd adds per inbound message, and memory, in one run.

Run as root after the guide (parts 1-4 applied on the lab it leaves up):
    .venv/bin/mailkit guide run && .venv/bin/python bench/inbound.py [--messages 200]

From the outside host, one SMTP connection to port 25 sends --messages ordinary messages one after the
other, first with rspamd's milter switched off (``smtpd_milters`` removed), then with it on again,
interleaved in blocks so that drift in the machine's load falls on both. Each figure is the time from
sending ``DATA`` to the server's 250 (the milter scans at the end of DATA, so its cost is inside),
measured on the outside host. Memory: PSS of rspamd and of Redis/Valkey (bench/memory.py's method).
The milter is switched back on at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import json
import statistics

from mailkit.clients.remote_client import run_program
from mailkit.core.engine import apply
from mailkit.core.resources import Postconf
from mailkit.guide.part3 import RSPAMD_MILTER
from mailkit.lab.lab_target import lab_connection

SENDER = r"""
import json, smtplib, sys, time
req = json.load(sys.stdin)
words = ("garden letter harbour winter meeting pencil orchard journey kettle window violin marble "
         "ladder candle meadow river basket lantern pepper saddle thunder blanket compass tunnel").split()
body = "\r\n".join(" ".join(words[(i * 7 + j) % len(words)] for j in range(12)) for i in range(30))
s = smtplib.SMTP(req["host"], 25, timeout=60)
s.ehlo("outside.example.net")
times = []
for n in range(req["count"]):
    msg = ("From: dana@example.net\r\nTo: %s\r\nSubject: bench %s %d\r\n"
           "Message-ID: <bench-%s-%d@example.net>\r\n\r\n%s\r\n") % (req["rcpt"], req["run"], n, req["run"], n, body)
    s.mail("dana@example.net")
    s.rcpt(req["rcpt"])
    t = time.perf_counter()
    code, _ = s.data(msg.encode())
    times.append(time.perf_counter() - t)
    if code != 250:
        print(json.dumps({"error": "DATA answered %d" % code})); sys.exit(0)
s.quit()
print(json.dumps({"times": times}))
"""

MEMORY = r"""
for unit in rspamd valkey-server redis-server; do
    cg=$(systemctl show -p ControlGroup --value "$unit" 2>/dev/null); kb=0
    [ -n "$cg" ] && [ -d "/sys/fs/cgroup$cg" ] || continue
    for pid in $(cat "/sys/fs/cgroup$cg/cgroup.procs"); do
        p=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null) || continue
        kb=$((kb + ${p:-0}))
    done
    echo "$unit $kb"
done
"""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200, help="messages per mode (at least 200 for the issue)")
    parser.add_argument("--blocks", type=int, default=4, help="alternating blocks per mode")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"without filter": [], "with filter": []}
    per_block = max(1, args.messages // args.blocks)
    with lab_connection("mail") as mail, lab_connection("outside") as outside:
        release = mail.run(["sh", "-c", ". /etc/os-release; echo $VERSION_CODENAME"]).stdout.strip()
        try:
            for block in range(args.blocks):
                for mode, milters in (("without filter", None), ("with filter", RSPAMD_MILTER)):
                    apply(mail, [Postconf({"smtpd_milters": milters})])
                    request = {"host": "mail.example.org", "rcpt": "alice@example.org", "count": per_block,
                               "run": f"{mode[:4]}{block}"}  # fmt: skip
                    seen = run_program(outside, SENDER, request, timeout=900)
                    if "times" not in seen:
                        raise SystemExit(f"sending failed: {json.dumps(seen)[:300]}")
                    times[mode] += seen["times"]
        finally:
            apply(mail, [Postconf({"smtpd_milters": RSPAMD_MILTER})])
        memory = dict(line.split() for line in mail.run(["sh", "-c", MEMORY]).stdout.splitlines() if line)
    print(f"inbound messages on the lab (Debian {release}), DATA to 250, {len(times['with filter'])} per mode")
    base = statistics.median(times["without filter"])
    for mode, values in times.items():
        median, p95 = statistics.median(values), percentile(values, 0.95)
        print(f"  {mode:15} median {median * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   {median / base:5.2f}x")
    added = statistics.median(times["with filter"]) - base
    added95 = percentile(times["with filter"], 0.95) - percentile(times["without filter"], 0.95)
    print(f"  rspamd adds     median {added * 1000:7.1f} ms   p95 {added95 * 1000:7.1f} ms per message")
    print("memory (PSS): " + ", ".join(f"{unit} {int(kb) / 1024:.1f} MiB" for unit, kb in memory.items()))


if __name__ == "__main__":
    main()
