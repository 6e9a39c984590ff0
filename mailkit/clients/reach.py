"""Which TCP ports of a server answer, seen from another host, on IPv4 and IPv6: what a firewall lets through.

A port is ``open`` (the handshake completed), ``refused`` (the host answered with a reset: nothing listens, and
no firewall hides it), ``filtered`` (no answer at all within the time: a firewall dropped the packets) or
``unreachable`` (an ICMP error said so). The probe runs on the other host with its own Python, every port at
once, so a whole scan costs one timeout; what it prints back is bounded and parsed strictly.

>>> parse_states("4 25 open\\n6 25 filtered\\nnoise\\n4 99999 open\\n")
{(4, 25): 'open', (6, 25): 'filtered'}
"""

from __future__ import annotations

from collections.abc import Sequence

from mailkit.core.ssh import Connection
from mailkit.core.values import Hostname

STATES = ("open", "refused", "filtered", "unreachable")
#: Seconds a port is given to answer before it counts as dropped (``filtered``): the kernel sends its SYN at 0, 1
#: and 3 s, so an open port behind a lossy path has three chances. A firewall that drops a port is only seen by
#: this wait running out, so a longer one makes every check that long.
DROPPED_AFTER = 3.5

# argv: host, timeout, ports...; prints "<family> <port> <state>" per address family the name resolves to.
_PROBE = r"""
import errno, socket, sys, threading
host, timeout, ports = sys.argv[1], float(sys.argv[2]), [int(p) for p in sys.argv[3:]]
targets = {}
for family, label in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
    try:
        targets[label] = (family, socket.getaddrinfo(host, None, family, socket.SOCK_STREAM)[0][4][0])
    except OSError:
        pass
out, lock = [], threading.Lock()
def probe(label, family, address, port):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((address, port))
        state = "open"
    except socket.timeout:
        state = "filtered"
    except ConnectionRefusedError:
        state = "refused"
    except OSError as exc:
        state = "filtered" if exc.errno == errno.ETIMEDOUT else "unreachable"
    finally:
        s.close()
    with lock:
        out.append(f"{label} {port} {state}")
threads = [threading.Thread(target=probe, args=(label, family, address, port))
           for label, (family, address) in targets.items() for port in ports]
for t in threads: t.start()
for t in threads: t.join()
print("\n".join(sorted(out)))
"""


def parse_states(text: str) -> dict[tuple[int, int], str]:
    """``(family, port) -> state`` from the probe's lines; anything else in them is ignored."""
    found: dict[tuple[int, int], str] = {}
    for line in text.splitlines()[:1000]:
        words = line.split()
        if len(words) == 3 and words[0] in ("4", "6") and words[1].isdigit() and words[2] in STATES:
            port = int(words[1])
            if 0 < port < 65536:
                found[(int(words[0]), port)] = words[2]
    return found


def port_states(
    outside: Connection, host: str, ports: Sequence[int], timeout: float = DROPPED_AFTER
) -> dict[tuple[int, int], str]:
    """What ``outside`` sees of ``host``'s TCP ``ports`` on each address family the name has."""
    argv = ["python3", "-c", _PROBE, str(Hostname(host)), str(timeout), *(str(int(p)) for p in ports)]
    done = outside.run(argv, timeout=timeout + 30, max_output=64 * 1024)
    return parse_states(done.stdout)
