"""The services mailkit configures: how a config change takes effect, and how to tell they run.

A registry, not an if/else chain: a new service is one :func:`register` call. ``before`` orders
them: a milter restarts before the MTA that connects to it.

>>> [s.name for s in in_order(["postfix", "opendkim"])]
['opendkim', 'postfix']
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from mailkit.core.errors import UsageError

#: Prints the TCP ports of Postfix's inet services, as its master.cf says (names through /etc/services).
POSTFIX_PORTS = r"""postconf -M | awk '$2 == "inet" {print $1}' | while read -r s; do
    p=${s##*:}
    case $p in *[!0-9]*) p=$(getent services "$p/tcp" | awk '{split($2, a, "/"); print a[1]}') ;; esac
    echo "$p"
done"""


@dataclass(frozen=True)
class Service:
    """A systemd unit, how a config change takes effect, and what "running" means for it."""

    name: str
    unit: str
    #: How a config change takes effect; reload-or-restart also starts a service that is not running.
    reload: tuple[str, ...]
    #: Config changes that a reload does not pick up need a restart instead.
    restart: tuple[str, ...] = ()
    #: A shell command that succeeds when the service really runs, besides its unit being active
    #: (bookworm's postfix.service is a wrapper that stays "active" when the master has died).
    probe: str = ""
    #: A shell command printing the TCP ports the service must listen on afterwards.
    ports: str = ""
    #: Services that must take effect before this one (a milter before the MTA).
    after: tuple[str, ...] = ()
    #: How long a (re)start may take before the service counts as not running.
    start_seconds: float = 10
    #: The command that checks the live configuration before a reload, as a person types it ("" if none).
    check: str = ""
    #: A reload or restart that takes several commands, as a person types them (:meth:`of_steps`).
    reload_steps: tuple[str, ...] = ()
    restart_steps: tuple[str, ...] = ()

    @classmethod
    def of_steps(cls, name: str, unit: str, reload_steps: tuple[str, ...], restart_steps: tuple[str, ...]) -> Service:
        """A service whose change takes effect through several commands: the apply runs them joined by ``&&``,
        the plan shows them one per line.

        >>> svc = Service.of_steps("t", "t.timer", ("systemctl daemon-reload", "systemctl restart t.timer"), ())
        >>> svc.reload
        ('sh', '-c', 'systemctl daemon-reload && systemctl restart t.timer')
        >>> svc.by_hand(False)
        ('systemctl daemon-reload', 'systemctl restart t.timer')
        """
        restart = ("sh", "-c", " && ".join(restart_steps)) if restart_steps else ()
        reload = ("sh", "-c", " && ".join(reload_steps))
        return cls(name, unit, reload, restart, reload_steps=reload_steps, restart_steps=restart_steps)

    def apply_command(self, needs_restart: bool) -> tuple[str, ...]:
        return self.restart if needs_restart and self.restart else self.reload

    def by_hand(self, needs_restart: bool) -> tuple[str, ...]:
        """Checking the configuration, then making it take effect, as a person types it.

        >>> SERVICES["postfix"].by_hand(False)
        ('postfix check', 'systemctl reload postfix')
        >>> SERVICES["rspamd"].by_hand(False)
        ('rspamadm configtest', 'systemctl restart rspamd')
        """
        steps = self.restart_steps if needs_restart and self.restart_steps else self.reload_steps
        if steps:
            return (*([self.check] if self.check else []), *steps)
        reloads = self.reload[:2] == ("systemctl", "reload-or-restart") and not needs_restart
        verb = "reload" if reloads else "restart"
        return (*([self.check] if self.check else []), f"systemctl {verb} {shlex.quote(self.unit)}")


SERVICES: dict[str, Service] = {}


def register(svc: Service) -> Service:
    """Add (or replace) a service in the registry."""
    SERVICES[svc.name] = svc
    return svc


#: Where Debian's rspamd takes milter connections from Postfix (its worker-proxy.inc: localhost:11332).
RSPAMD_MILTER_PORT = 11332
#: rspamd's workers take clients here: the milter proxy, the scanner and the controller (Debian's defaults).
RSPAMD_WORKER_PORTS = (RSPAMD_MILTER_PORT, 11333, 11334)

#: Succeeds when rspamd's milter proxy answers a milter handshake (SMFIC_OPTNEG, answered by an "O" packet).
#: The port alone is not enough: rspamd's main process holds it before its workers exist. bash, for /dev/tcp.
_OPTNEG = rf"""exec 3<>/dev/tcp/127.0.0.1/{RSPAMD_MILTER_PORT} || exit 1
printf '\0\0\0\rO\0\0\0\6\0\0\1\377\0\37\377\377' >&3
[ "$(timeout 2 head -c 5 <&3 | tail -c 1)" = O ]"""
RSPAMD_MILTER_ANSWERS = shlex.join(["bash", "-c", _OPTNEG])

#: rspamd's restart, without waiting for clients that are not there. A worker that has scanned a message stays
#: up to 16 s after SIGTERM (its shutdown grace) with no client left: measured on Debian 13 with rspamd 3.12, a
#: restart after one message took 16.2 s, three times per guide run. While rspamd stops, a worker with no
#: client connection on any of its ports (so no message being scanned, no learning under way) is ended at
#: once; one with a client is waited for, as rspamd intends. Then rspamd starts again.
#: ``stop --no-block`` only queues the stop job: should the unit still say "active" when asked, a ``start`` would
#: replace the queued stop and rspamd would go on with its old configuration while the apply reports a restart.
#: So the loop also waits while the stop has not begun, and a stop that never begins ends in a plain restart.
#: (A guard, not a proven cause: part 3's first signed mail left unsigned twice on a loaded machine in December
#: 2026, not reproduced in 9 runs since; the lab tests now print the mail host's logs when they fail.)
RSPAMD_RESTART = r"""set -u
systemctl stop --no-block rspamd
clients() {
    ss -Htn state established '( WORKER_PORTS )'
    ss -Hxn state established | awk '$4 ~ /^\/(run|var\/lib)\/rspamd/'
}
i=0
while [ "$i" -lt 300 ]; do
    state=$(systemctl is-active rspamd)
    case "$state" in
    deactivating)
        if [ "$i" -ge 2 ] && [ -z "$(clients)" ]; then
            main=$(systemctl show -p MainPID --value rspamd)
            group=/sys/fs/cgroup$(systemctl show -p ControlGroup --value rspamd)
            for pid in $(cat "$group/cgroup.procs" 2>/dev/null); do
                [ "$pid" = "$main" ] || kill -KILL "$pid" 2>/dev/null
            done
        fi ;;
    active|reloading) ;;  # the queued stop has not begun yet
    *) break ;;
    esac
    i=$((i + 1))
    sleep 0.1
done
if [ "$(systemctl is-active rspamd)" = active ]; then
    systemctl restart rspamd
else
    systemctl start rspamd
fi
""".replace("WORKER_PORTS", " or ".join(f"sport = :{port}" for port in RSPAMD_WORKER_PORTS))


def _systemd(name: str, **kwargs: object) -> Service:
    reload = ("systemctl", "reload-or-restart", name)
    return Service(name, name, reload, ("systemctl", "restart", name), **kwargs)  # type: ignore[arg-type]


for _svc in (
    _systemd(
        "postfix",
        probe="postfix status",
        ports=POSTFIX_PORTS,
        after=("opendkim", "opendmarc", "rspamd", "dovecot"),
        check="postfix check",
    ),
    _systemd("dovecot", check="doveconf -n > /dev/null"),
    Service("opendkim", "opendkim", ("systemctl", "restart", "opendkim"), check="opendkim -n"),
    Service("opendmarc", "opendmarc", ("systemctl", "restart", "opendmarc")),
    # Restarted, not reloaded: after a reload the old workers go on scanning with the old configuration for up
    # to 16 s beside the new ones (measured: the old proxy still held the milter port). Its first starts after
    # installation take over 10 s (2 CPUs) before the milter answers.
    Service(
        "rspamd",
        "rspamd",
        ("sh", "-c", RSPAMD_RESTART),
        probe=RSPAMD_MILTER_ANSWERS,
        ports=f"echo {RSPAMD_MILTER_PORT}",
        after=("redis-server", "valkey-server"),
        start_seconds=90,
        check="rspamadm configtest",
    ),
    # rspamd's memory for Bayes (part 4): Redis in bookworm, Valkey (its community fork) from trixie on.
    _systemd("redis-server", ports="echo 6379"),
    _systemd("valkey-server", ports="echo 6379"),
    _systemd("named", check="named-checkconf"),
    # The server's own validating resolver (part 3 section 13).
    _systemd("unbound", ports="echo 53", check="unbound-checkconf"),
    # Part 3 section 14: the web server of the MTA-STS policies.
    _systemd("nginx", ports="echo 443", check="nginx -t"),
    # Part 4's ban on password guessers; "ping" answers once its jails are loaded.
    _systemd("fail2ban", probe="fail2ban-client ping", check="fail2ban-client -t"),
):
    register(_svc)


def service(name: str) -> Service:
    try:
        return SERVICES[name]
    except KeyError:
        raise UsageError(f"unknown service {name!r}: known are {', '.join(SERVICES)}") from None


def in_order(names: Iterable[str]) -> list[Service]:
    """The named services, each after those it depends on (then by name)."""
    wanted = sorted(set(names))
    done: list[Service] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise UsageError(f"services depend on each other in a circle: {' -> '.join((*path, name))}")
        svc = service(name)
        if svc in done:
            return
        for dependency in sorted(svc.after):
            if dependency in wanted:
                visit(dependency, (*path, name))
        done.append(svc)

    for name in wanted:
        visit(name, ())
    return done
