"""MTA-STS (RFC 8461): the policy a domain serves over HTTPS, fetched and read as a sending server would.

>>> policy = parse_policy("version: STSv1\\nmode: enforce\\nmx: mail.example.org\\nmax_age: 604800\\n")
>>> policy_problems(policy, "mail.example.org")
[]
>>> policy_problems(parse_policy("version: STSv1\\nmode: enforce\\nmax_age: 86400\\n"), "mail.example.org")
['mode enforce lists no mx', 'mail.example.org matches no mx line: senders will refuse to deliver']
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Sequence

from mailkit.core.errors import MailkitError

POLICY_PATH = "/.well-known/mta-sts.txt"
HTTPS_PORT = 443
MAX_AGE_LIMIT = 31557600  # RFC 8461 section 3.2: at most a year
MAX_POLICY_BYTES = 64 * 1024  # RFC 8461 section 3.3: senders may refuse anything longer


def parse_policy(text: str) -> dict[str, list[str]]:
    """``key: value`` lines as ``{key: [values]}`` (``mx`` may repeat)."""
    policy: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            policy.setdefault(key.strip().lower(), []).append(value.strip())
    return policy


def mx_matches(pattern: str, hostname: str) -> bool:
    """An ``mx`` line matches a host name exactly, or ``*.`` matches one leftmost label.

    >>> mx_matches("*.example.org", "mail.example.org"), mx_matches("*.example.org", "a.b.example.org")
    (True, False)
    """
    pattern, hostname = pattern.lower().rstrip("."), hostname.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = hostname.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == hostname


def policy_problems(policy: dict[str, list[str]], hostname: str) -> list[str]:
    """What RFC 8461 says is wrong with a policy served for a domain whose MX is ``hostname``."""
    problems = []
    if policy.get("version") != ["STSv1"]:
        problems.append(f"version is {policy.get('version', ['missing'])[0]}, not STSv1")
    mode = policy.get("mode", ["missing"])[0]
    if mode not in ("enforce", "testing", "none"):
        problems.append(f"mode {mode} is not enforce, testing or none")
    age = policy.get("max_age", [""])[0]
    if not age.isdigit() or int(age) > MAX_AGE_LIMIT:
        problems.append(f"max_age {age or 'missing'} is not a number of seconds up to {MAX_AGE_LIMIT}")
    patterns = policy.get("mx", [])
    if mode in ("enforce", "testing") and not patterns:
        problems.append(f"mode {mode} lists no mx")
    if mode in ("enforce", "testing") and not any(mx_matches(p, hostname) for p in patterns):
        problems.append(f"{hostname} matches no mx line: senders will refuse to deliver")
    return problems


def policy_host_addresses(lookup: Callable[[str, str], Sequence[str]], domain: str, hops: int = 8) -> list[str]:
    """The addresses of ``mta-sts.<domain>``, its CNAMEs followed (at most ``hops``) as a recursive resolver does:
    a name server that only answers for its own zones gives the CNAME and stops there.

    >>> records = {("mta-sts.b.example.org", "CNAME"): ("mail.example.org.",),
    ...            ("mail.example.org", "A"): ("198.51.100.25",)}
    >>> policy_host_addresses(lambda name, rtype: records.get((name, rtype), ()), "b.example.org")
    ['198.51.100.25']
    """
    name = f"mta-sts.{domain}"
    for _ in range(hops):
        found = [a for rtype in ("A", "AAAA") for a in lookup(name, rtype) if not a.endswith(".")]
        if found:
            return found
        alias = lookup(name, "CNAME")
        if not alias:
            return []
        name = alias[0].rstrip(".")
    raise MailkitError(f"mta-sts.{domain}: more than {hops} CNAMEs in a row")


def fetch_policy(
    domain: str, address: str, *, port: int | None = None, cafile: str | None = None, timeout: float = 10
) -> str:
    """GET the policy from ``address`` (the A record of ``mta-sts.<domain>``), its certificate verified for that
    name, as a sending server does; errors name what failed. ``timeout`` bounds the whole fetch, not each read
    (a server that trickles a byte at a time is cut off all the same)."""
    host = f"mta-sts.{domain}"
    deadline = time.monotonic() + timeout
    context = ssl.create_default_context(cafile=cafile)
    request = f"GET {POLICY_PATH} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: mailkit-check\r\n\r\n".encode()
    try:
        with (
            socket.create_connection((address, port or HTTPS_PORT), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            tls.sendall(request)
            answer = b""
            while len(answer) <= MAX_POLICY_BYTES + 4096:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise MailkitError(f"https://{host}{POLICY_PATH} took longer than {timeout:g} s")
                tls.settimeout(left)
                chunk = tls.recv(65536)
                if not chunk:
                    break
                answer += chunk
    except ssl.SSLCertVerificationError as exc:
        raise MailkitError(f"https://{host}: the certificate does not verify ({exc.verify_message})") from None
    except TimeoutError:
        raise MailkitError(f"https://{host}{POLICY_PATH} took longer than {timeout:g} s") from None
    except OSError as exc:
        raise MailkitError(f"https://{host}: {exc}") from None
    head, _, body = answer.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    if status.split()[1:2] != ["200"]:
        raise MailkitError(f"https://{host}{POLICY_PATH} answered {status or 'nothing'}")
    if len(body) > MAX_POLICY_BYTES:
        raise MailkitError(f"https://{host}{POLICY_PATH} is over {MAX_POLICY_BYTES} bytes")
    return body.decode(errors="replace")
