"""A directory of a lab host on a filesystem of its own, small enough to fill: the fault "the disk is full".

The lab's hosts share the machine's disk, which no test may fill. So a test gives one directory (a mailbox's
Maildir) a tmpfs of a few megabytes in the host's own mount namespace, where the host's programs see it as any
filesystem that runs out of space (``No space left on device``); :func:`resize` then "frees space", as deleting
files would. The host's root cannot do this itself (systemd-nspawn keeps ``CAP_SYS_ADMIN`` from it), so the
machine enters the host's user and mount namespaces as the host's root with every capability there. A reset of
the host discards it with the rest of the host.

>>> mount_options(megabytes=4, owner=(5000, 5000))
'size=4m,mode=0700,uid=5000,gid=5000'
"""

from __future__ import annotations

import os

from mailkit.core.local import run_local
from mailkit.lab.layout import HostSpec


def mount_options(megabytes: int, owner: tuple[int, int]) -> str:
    """tmpfs options: its size, and its top directory owned by ``owner`` (user and group IDs as the host has them)."""
    _size(megabytes)
    return f"size={megabytes}m,mode=0700,uid={owner[0]:d},gid={owner[1]:d}"


def _size(megabytes: int) -> None:
    if not 1 <= megabytes <= 1024:
        raise ValueError(f"a small filesystem has 1 to 1024 MB, not {megabytes}")


def _in_host(spec: HostSpec, argv: list[str]) -> None:
    """Run ``argv`` (the host's own program) as the host's root in its user and mount namespaces, from its root."""
    run_local(["nsenter", "-t", str(host_init(spec)), "-U", "-m", "-r", "-w", "--", *argv])


def host_init(spec: HostSpec) -> int:
    """The PID (as the machine sees it) of the host's PID 1: the child of the host's systemd-nspawn, which is the
    one process of the host's network namespace that the machine sees there."""
    for pid in run_local(["ip", "netns", "pids", spec.netns]).stdout.split():
        try:
            with open(f"/proc/{pid}/comm") as comm:
                if comm.read().strip() != "systemd-nspawn":
                    continue
            children = []
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as listed:
                    children += listed.read().split()
            for child in children:
                with open(f"/proc/{child}/status") as status:
                    nspid = next((line.split()[1:] for line in status if line.startswith("NSpid:")), [])
                if nspid[-1:] == ["1"]:
                    return int(child)
        except OSError:
            continue
    raise RuntimeError(f"no PID 1 of {spec.name}: is the lab up?")


def mount(spec: HostSpec, path: str, megabytes: int, owner: tuple[int, int]) -> None:
    """Put ``path`` of host ``spec`` (an existing directory, hidden while mounted over) on a tmpfs of ``megabytes``."""
    _in_host(spec, ["mount", "-t", "tmpfs", "-o", mount_options(megabytes, owner), "mailkit-small", path])


def resize(spec: HostSpec, path: str, megabytes: int) -> None:
    """Give the filesystem at ``path`` ``megabytes`` in all (what is on it stays)."""
    _size(megabytes)
    _in_host(spec, ["mount", "-o", f"remount,size={megabytes}m", path])
