"""Checks that the lab works: each host answers SSH and runs systemd; the lab DNS answers outside.

>>> parse_os_release('PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\\nVERSION_CODENAME=trixie\\n')
'trixie'
"""

from __future__ import annotations

from mailkit.core.checks import CheckResult
from mailkit.core.errors import MailkitError
from mailkit.lab.layout import HOSTS


def parse_os_release(text: str) -> str:
    """The codename from /etc/os-release (sid reports its testing codename; that is fine here)."""
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME":
            return value.strip('"')
    return "unknown"


def check_lab() -> list[CheckResult]:
    """Connect to every lab host over SSH (verifying its key) and check what the guide relies on."""
    from mailkit.lab.lab_target import lab_connection

    results: list[CheckResult] = []
    for name, spec in HOSTS.items():
        try:
            with lab_connection(name) as conn:
                release = parse_os_release(conn.read("/etc/os-release").decode())
                state = conn.run(["systemctl", "is-system-running"], check=False).stdout.strip()
        except MailkitError as exc:
            results.append(CheckResult("lab", f"{name}: SSH", False, str(exc), "mailkit lab down && mailkit lab up"))
            continue
        results.append(CheckResult("lab", f"{name}: SSH", True, f"{spec.fqdn} ({release})"))
        results.append(
            CheckResult(
                "lab",
                f"{name}: systemd",
                state == "running",
                state,
                f"mailkit lab exec {name} -- systemctl --failed",
            )
        )
    mail = HOSTS["mail"]
    with lab_connection("outside") as outside:
        forward = outside.run(["dig", "+short", mail.fqdn, "A"], check=False).stdout.strip()
        reverse = outside.run(["dig", "+short", "-x", mail.address], check=False).stdout.strip()
    results.append(CheckResult("dns", f"{mail.fqdn} A (from outside)", forward == mail.address, forward or "no answer"))
    results.append(
        CheckResult("dns", f"{mail.address} PTR (from outside)", reverse == mail.fqdn + ".", reverse or "no answer")
    )
    return results
