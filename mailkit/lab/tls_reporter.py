"""The lab's receiver reports TLS as large providers do (RFC 8460): each handshake its Postfix makes with a domain that
publishes ``_smtp._tls`` is counted, and once a day every such domain gets a report of its successes and failures
at the address its record names.

The parts are the real ones: Postfix 3.10 (trixie's) hands each handshake's result to libtlsrpt, which sends it to
``tlsrpt-collectd``; ``tlsrpt-reportd`` makes the day's reports and mails them with ``sendmail``. Both are sys4's
tlsrpt-reporter, the reporter Postfix's TLSRPT_README names (on PyPI, not in Debian: the version this machine
installed, pinned in ``pyproject.toml``, is copied onto the host). Postfix reports the policies it enforces, DANE
among them, so the receiver sends by DANE through a validating resolver of its own, set up as part 3 section 13
sets up the server's.

A reporting receiver is not the default receiver (its resolver keeps answers for seconds, which the other tests'
DNS changes must not meet): :func:`ensure` makes it one, :func:`remove` the plain one again. :func:`send_reports`
makes a day pass when asked (``tlsrpt-collectd`` files what it counted so far as yesterday's on ``SIGUSR2``, as at
midnight UTC), then runs ``tlsrpt-reportd`` until that day's reports are sent.

>>> print(CONFIG.splitlines()[2])
storage = sqlite:///var/lib/tlsrpt/collectd.sqlite
"""

from __future__ import annotations

import importlib.metadata
import json
import shlex

from mailkit.core import engine
from mailkit.core.errors import LabError
from mailkit.core.resources import Directory, File, Postconf, Resource, SystemAccount
from mailkit.core.ssh import Connection
from mailkit.guide import dane
from mailkit.lab.dns import NAMESERVER
from mailkit.lab.receiver import RECEIVER

#: The Python distribution copied onto the host, and where it goes.
DISTRIBUTION = "tlsrpt_reporter"
SOURCE = "/opt/tlsrpt-reporter"
#: The reporter's own account; it writes the socket Postfix's smtp processes (group postfix) send to.
ACCOUNT, ACCOUNT_ID = "_tlsrpt", 5020
STATE = "/var/lib/tlsrpt"
COLLECTD_DB, REPORTD_DB = f"{STATE}/collectd.sqlite", f"{STATE}/reportd.sqlite"
#: Under Postfix's queue directory, so the same name works for chrooted smtp processes and others.
SOCKET_DIR = "/var/spool/postfix/run/tlsrpt"
SOCKET_IN_QUEUE = "run/tlsrpt/tlsrpt.sock"
PROGRAMS = {"collectd": "tlsrpt_collectd_main", "fetcher": "tlsrpt_fetcher_main", "reportd": "tlsrpt_reportd_main"}
#: The two that run as services (the reportd runs the fetcher).
DAEMONS = ("collectd", "reportd")
#: One file, a section per program (each reads its own). The reportd sends at once (``spread_out_delivery``: a
#: provider spreads its reports over hours) and looks for work every second.
CONFIG = f"""# Written by mailkit: the lab receiver's TLS reporting (tlsrpt-reporter).
[tlsrpt_collectd]
storage = sqlite://{COLLECTD_DB}
socketname = {SOCKET_DIR}/tlsrpt.sock
socketgroup = postfix
socketmode = 0220
log_level = info

[tlsrpt_fetcher]
storage = sqlite://{COLLECTD_DB}

[tlsrpt_reportd]
dbname = {REPORTD_DB}
fetchers = /usr/local/bin/tlsrpt-fetcher --config_file /etc/tlsrpt/tlsrpt.cfg
organization_name = {RECEIVER.domain}
contact_info = postmaster@{RECEIVER.domain}
sender_address = tlsrpt-noreply@{RECEIVER.domain}
sendmail_script = /usr/sbin/sendmail -i -t -f tlsrpt-noreply@{RECEIVER.domain}
spread_out_delivery = 1
interval_main_loop = 1
log_level = info
"""
UNIT = """[Unit]
Description=tlsrpt-{name}: TLS reporting (RFC 8460) of the lab's receiver (written by mailkit)
After=network.target

[Service]
User={account}
Group={account}
SupplementaryGroups=postfix
ExecStart=/usr/local/bin/tlsrpt-{name} --config_file /etc/tlsrpt/tlsrpt.cfg
"""
#: What Postfix sets for it: DANE where the receiving domain publishes TLSA (and proves it), TLS otherwise when
#: offered; each handshake's result to the collector; and the settings as they were without it.
SENDING = {
    "smtp_tls_security_level": "dane",
    "smtp_dns_support_level": "dnssec",
    "smtp_tlsrpt_enable": "yes",
    "smtp_tlsrpt_socket_name": SOCKET_IN_QUEUE,
}
PLAIN = {"smtp_tls_security_level": "may", "smtp_dns_support_level": None, "smtp_tlsrpt_enable": None,
         "smtp_tlsrpt_socket_name": None}  # fmt: skip
PLAIN_RESOLV_CONF = f"nameserver {NAMESERVER.address}\n"

#: Waits until the reportd has made and sent (or given up on) every report of the day it fetched; prints each
#: destination as JSON: [domain, destination, status].
_WAIT_SENT = f"""
import json, sqlite3, sys, time
deadline = time.monotonic() + float(sys.argv[1])
while True:
    try:
        db = sqlite3.connect("file:{REPORTD_DB}?mode=ro", uri=True)
        jobs = [s for (s,) in db.execute("SELECT status FROM fetchjobs")]
        fetched = db.execute("SELECT status, (day, domain) IN (SELECT day, domain FROM reports) FROM reportdata")
        data = list(fetched)
        sent = list(db.execute("SELECT domain, destination, destinations.status FROM destinations "
                               "JOIN reports ON r_id = d_r_id"))
        db.close()
    except sqlite3.Error:
        jobs, data, sent = [], [], []
    done = jobs and all(jobs) and all(s and (s != "fetched" or made) for s, made in data) and all(s for *_, s in sent)
    if done or time.monotonic() > deadline:
        print(json.dumps({{"done": bool(done), "sent": sent}}))
        break
    time.sleep(0.5)
"""

#: The day's results filed as yesterday's (the collector moves its database to ``.yesterday``: the same file, so the
#: same inode, once done), then a reportd that has reported nothing yet started (it reports a day once). One signal
#: only: a second one would file the day again, an empty one over the counted (ci69-ci71 lost a counted failure so,
#: asking again when the first roll-over seemed late; it seemed late because the collector was still filing its
#: first day when asked: :func:`ensure` now waits for that).
_NEW_DAY = f"""set -eu
today=$(stat -c %i {COLLECTD_DB})
systemctl kill -s USR2 tlsrpt-collectd
for i in $(seq 300); do
    [ "$(stat -c %i {COLLECTD_DB}.yesterday 2>/dev/null)" = "$today" ] && break
    sleep 0.1
done
[ "$(stat -c %i {COLLECTD_DB}.yesterday)" = "$today" ] || {{ echo "tlsrpt-collectd did not roll over" >&2; exit 1; }}
systemctl stop tlsrpt-reportd
rm -f -- {REPORTD_DB}
systemctl start tlsrpt-reportd
"""
#: The collector started afresh, with nothing counted, and waited for until it is ready for a day's roll-over: a
#: collector binds its socket before it opens its database, and one that finds none makes it and at once files it as
#: yesterday's; a roll-over asked for meanwhile is done after that one, on another file than the one it was asked for
#: (what ci68 and ci72 saw as a collector that "did not roll over").
_FRESH_COLLECTOR = f"""set -eu
systemctl stop tlsrpt-reportd tlsrpt-collectd
rm -f -- {COLLECTD_DB} {COLLECTD_DB}.yesterday {REPORTD_DB}
systemctl start tlsrpt-collectd
for i in $(seq 150); do
    [ -S {SOCKET_DIR}/tlsrpt.sock ] && [ -e {COLLECTD_DB}.yesterday ] && [ -e {COLLECTD_DB} ] && exit 0
    sleep 0.1
done
echo "tlsrpt-collectd did not start: no socket or no first day filed" >&2
exit 1
"""


def program(name: str) -> str:
    """The command that runs one of the reporter's programs from the copied source."""
    return (
        "#!/usr/bin/python3\n# Written by mailkit: sys4's tlsrpt-reporter, copied to " + SOURCE + ".\n"
        f"import sys\nsys.path.insert(0, {SOURCE!r})\n"
        f"from tlsrpt_reporter.tlsrpt import {PROGRAMS[name]}\nsys.exit({PROGRAMS[name]}())\n"
    )


#: pip's own records of an installation, not the distribution's.
_PIP_RECORDS = ("INSTALLER", "RECORD", "REQUESTED", "direct_url.json")


def source_files() -> list[Resource]:
    """The reporter's package and its metadata (its entry points name its storage back ends), as installed here, in
    their directories."""
    try:
        found = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise LabError(f"{DISTRIBUTION} is not installed here: pip install -e '.[dev]'") from None
    directories: set[str] = set()
    files: list[Resource] = []
    for path in found.files or []:
        top = path.parts[0]
        if (top != DISTRIBUTION and not top.endswith(".dist-info")) or "__pycache__" in path.parts:
            continue
        if path.name in _PIP_RECORDS:
            continue
        directories.update(f"{SOURCE}/{'/'.join(path.parts[:n])}" for n in range(1, len(path.parts)))
        files.append(File(f"{SOURCE}/{path.as_posix()}", found.locate_file(path).read_bytes()))  # type: ignore[attr-defined]
    return [Directory(SOURCE, mode=0o755), *(Directory(d, mode=0o755) for d in sorted(directories)), *files]


def resources(trust_anchor: str) -> list[Resource]:
    """The reporting receiver, on top of the receiver (:mod:`mailkit.lab.receiver`)."""
    return [
        *dane.validating_resolver(NAMESERVER.address, trust_anchor),
        File("/etc/resolv.conf", dane.RESOLV_CONF, service="postfix", restart=True),
        *source_files(),
        *(File(f"/usr/local/bin/tlsrpt-{name}", program(name), mode=0o755) for name in PROGRAMS),
        SystemAccount(ACCOUNT, ACCOUNT, ACCOUNT_ID, ACCOUNT_ID, STATE),
        Directory(STATE, owner=ACCOUNT, group=ACCOUNT, mode=0o750),
        Directory("/var/spool/postfix/run", mode=0o755),
        Directory(SOCKET_DIR, owner=ACCOUNT, group="postfix", mode=0o750),
        Directory("/etc/tlsrpt", mode=0o755),
        File("/etc/tlsrpt/tlsrpt.cfg", CONFIG),
        *(File(f"/etc/systemd/system/tlsrpt-{n}.service", UNIT.format(name=n, account=ACCOUNT)) for n in DAEMONS),
        Postconf(SENDING),
    ]


def supported(outside: Connection) -> bool:
    """Whether the receiver's Postfix reports TLS (3.10 and later, built with libtlsrpt: trixie's)."""
    said = outside.run(["postconf", "-d", "smtp_tlsrpt_enable"], check=False)
    return said.ok and said.stdout.startswith("smtp_tlsrpt_enable")


def ensure(outside: Connection, trust_anchor: str) -> engine.ApplyResult:
    """Make the receiver one that sends by DANE and reports TLS (no change when it already is), its collector
    started afresh with nothing counted."""
    if not supported(outside):
        raise LabError("the receiver's Postfix cannot report TLS (Postfix 3.10 and later: trixie's)")
    applied = engine.apply(outside, resources(trust_anchor))
    # Unbound too: a receiver made plain again (remove) stopped it, and its files did not change since.
    outside.run(["sh", "-c", "systemctl daemon-reload && systemctl start unbound"])
    outside.run(["sh", "-c", _FRESH_COLLECTOR], timeout=60)
    return applied


def remove(outside: Connection) -> None:
    """The plain receiver again: the lab's nameserver as its resolver, Postfix without DANE and reports, the
    reporter stopped with what it counted (the source and the account stay: nothing runs them)."""
    outside.run(["sh", "-c", "systemctl stop tlsrpt-reportd tlsrpt-collectd unbound; "
                 f"rm -rf -- {STATE}/*"])  # fmt: skip
    engine.apply(outside, [File("/etc/resolv.conf", PLAIN_RESOLV_CONF, service="postfix", restart=True),
                           Postconf(PLAIN)])  # fmt: skip


def send_reports(outside: Connection, seconds: float = 90) -> list[str]:
    """The reports of what the receiver counted since the last ones, sent now (a provider sends them daily): a line
    per report sent ("sent report for example.org to mailto:postmaster@example.org")."""
    outside.run(["sh", "-c", _NEW_DAY], timeout=60)
    try:
        said = outside.run(["python3", "-c", _WAIT_SENT, str(seconds)], timeout=seconds + 30)
    finally:
        outside.run(["systemctl", "stop", "tlsrpt-reportd"], check=False)
    result = json.loads(said.stdout)
    if not result["done"]:
        log = outside.run(["sh", "-c", "journalctl -u tlsrpt-reportd -o cat | tail -n 20"], check=False).stdout
        raise LabError(f"tlsrpt-reportd sent no report within {seconds:.0f} s: {shlex.quote(log[-600:])}")
    return [f"{'sent' if status == 'sent' else status} report for {domain} to {destination}"
            for domain, destination, status in result["sent"]]  # fmt: skip
