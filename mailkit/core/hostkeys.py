"""SSH host key verification: known_hosts only, never trust on first use.

>>> fingerprint(paramiko.ECDSAKey.generate()).startswith("SHA256:")
True
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import paramiko

from mailkit.core.errors import HostKeyError


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint of a key, as ``ssh-keygen -l`` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def unknown_key_message(host: str, key: paramiko.PKey, known_hosts: list[Path]) -> str:
    files = ", ".join(str(p) for p in known_hosts) or "no known_hosts file"
    return (
        f"unknown SSH host key for {host}: {key.get_name()} {fingerprint(key)} is not in {files}. "
        f"Compare that fingerprint with the server's own ('ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub' "
        f"on its console); if it matches, accept it with 'ssh-keyscan -t {key.get_name()} {host} >> "
        f"~/.ssh/known_hosts'."
    )


def mismatch_message(host: str, got: paramiko.PKey, expected: paramiko.PKey, known_hosts: list[Path]) -> str:
    files = ", ".join(str(p) for p in known_hosts)
    return (
        f"SSH host key for {host} does NOT match known_hosts ({files}): it offered {got.get_name()} "
        f"{fingerprint(got)}, known_hosts has {fingerprint(expected)}. Someone may be intercepting the "
        f"connection; if the server was reinstalled, remove the old key with 'ssh-keygen -R {host}' and "
        f"verify the new one before accepting it."
    )


class RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
    """paramiko policy: an unknown host key is an error that names its fingerprint (no auto-add)."""

    def __init__(self, known_hosts: list[Path]) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise HostKeyError(unknown_key_message(hostname, key, self.known_hosts))
