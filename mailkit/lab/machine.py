"""One lab host: an overlay root, its own identity, booted by systemd-nspawn in its namespace.

>>> from mailkit.lab.layout import HOSTS
>>> nspawn_argv(Path("/r"), HOSTS["mail"])[:3]
['systemd-nspawn', '--quiet', '--directory=/r']
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mailkit.core.errors import LabError
from mailkit.core.local import run_local
from mailkit.lab.layout import GATEWAY_V4, PROXY_PORT, HostSpec
from mailkit.lab.network import NETNS_DIR

SSHD_DROPIN = """\
# Written by mailkit's lab: one host key, made for this host by the lab (see the lab's known_hosts).
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
"""


@dataclass(frozen=True)
class HostPaths:
    """Where one host lives under the lab's state directory."""

    top: Path

    @property
    def upper(self) -> Path:
        return self.top / "upper"

    @property
    def work(self) -> Path:
        return self.top / "work"

    @property
    def root(self) -> Path:
        return self.top / "root"

    @property
    def log(self) -> Path:
        return self.top / "console.log"


def cgroup_mounts() -> list[Path]:
    """Cgroup hierarchies a booted systemd needs a cgroup of its own in (v2 and the v1 'systemd' one)."""
    found = []
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            _dev, where, fstype, opts, *_ = line.split()
            if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in opts.split(",")):
                found.append(Path(where))
    return found


def mount_root(paths: HostPaths, lowers: list[Path]) -> None:
    """Mount the host's root: a fresh-or-kept upper over the role layer and the base."""
    for d in (paths.upper, paths.work, paths.root):
        d.mkdir(parents=True, exist_ok=True)
    if os.path.ismount(paths.root):
        return
    lowerdir = ":".join(str(p) for p in lowers)
    run_local(
        [
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            # metacopy: shifting the owners into the host's user namespace copies up metadata, not whole files.
            f"lowerdir={lowerdir},upperdir={paths.upper},workdir={paths.work},metacopy=on",
            str(paths.root),
        ]
    )


#: The most the lab reads of a file in a host's tree (its passwd, its CA bundle): the host's root may have made it.
READ_LIMIT = 4 * 1024 * 1024


def _host_path(root: Path, rel: str) -> Path:
    """``rel`` in the host's tree, refused when a directory on the way is a link: the host's root may have made it
    (a snapshot and a kept layer keep it), and the machine's root would act where it points."""
    path = root / rel.lstrip("/")
    parents = [p for p in [path.parent, *path.parent.parents] if p.is_relative_to(root) and p != root]
    linked = [p for p in parents if p.is_symlink()]
    if linked:
        raise LabError(f"{linked[-1]} is a link in the host's tree: not followed ({rel})")
    return path


def _read(root: Path, rel: str) -> str:
    """A file of the host's tree as text: empty when absent or a link (never followed); refused when it is no
    plain file (a FIFO would hold the lab forever) or larger than :data:`READ_LIMIT`."""
    try:
        fd = os.open(_host_path(root, rel), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return ""
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the file itself is a link
            return ""
        raise
    with os.fdopen(fd, "rb") as src:
        found = os.fstat(src.fileno())
        if not stat.S_ISREG(found.st_mode) or found.st_size > READ_LIMIT:
            raise LabError(f"{rel} in the host's tree is not a plain file of at most {READ_LIMIT} bytes")
        return src.read(READ_LIMIT).decode(errors="replace")


def _owner(root: Path, user: str) -> tuple[int, int]:
    for line in _read(root, "etc/passwd").splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise LabError(f"no user {user!r} in {root}/etc/passwd")


def uid_base(root: Path) -> int:
    """Where the host's UID 0 is on this machine: 0 before its first boot, then the start of the range its user
    namespace maps (systemd-nspawn shifts the tree's owners into it when it boots the host)."""
    return root.stat().st_uid


def _put(root: Path, rel: str, text: str, mode: int = 0o644, owner: tuple[int, int] = (0, 0)) -> None:
    """Write a file into the host's tree, owned by ``owner`` as the host sees it (shifted into its range); a link
    on the way (which the host's root may have made, and a snapshot kept) is refused, never followed."""
    base = uid_base(root)
    path = _host_path(root, rel)
    parents = [p for p in [path.parent, *path.parent.parents] if p.is_relative_to(root) and p != root]
    missing = [p for p in parents if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    for made in missing:
        os.chown(made, base, base)
    path.unlink(missing_ok=True)  # a link there is removed, never followed
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
        os.fchown(out.fileno(), base + owner[0], base + owner[1])
        os.fchmod(out.fileno(), mode)


def write_identity(root: Path, spec: HostSpec, host_key: Path, authorized_key: str, *, resolver: bool = True) -> None:
    """Give a host what must be its own before it boots: name, resolver (unless ``resolver`` is False: a host from a
    snapshot keeps the one it had), machine id, SSH keys, apt proxy."""
    from mailkit.lab.dns import NAMESERVER

    hosts = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    hosts += [f"{spec.address}\t{spec.fqdn} {spec.name}", f"{spec.address6}\t{spec.fqdn} {spec.name}"]
    _put(root, "etc/hostname", spec.name + "\n")
    _put(root, "etc/hosts", "\n".join(hosts) + "\n")
    if resolver or not os.path.lexists(root / "etc/resolv.conf"):  # lexists: a link in the host is not followed
        _put(root, "etc/resolv.conf", f"nameserver {NAMESERVER.address}\n")
    _put(root, "etc/machine-id", uuid.uuid4().hex + "\n", 0o444)
    _host_path(root, "var/lib/dbus/machine-id").unlink(missing_ok=True)
    _put(
        root,
        "etc/apt/apt.conf.d/00mailkit-lab-proxy",
        f"// The lab has no route out: apt goes through the machine's caching proxy.\n"
        f'Acquire::http::Proxy "http://{GATEWAY_V4}:{PROXY_PORT}";\n',
    )
    _put(root, "etc/ssh/sshd_config.d/mailkit-lab.conf", SSHD_DROPIN)
    _put(root, "etc/ssh/ssh_host_ed25519_key", host_key.read_text(), 0o600)
    _put(root, "etc/ssh/ssh_host_ed25519_key.pub", host_key.with_suffix(".pub").read_text())
    _put(root, "root/.ssh/authorized_keys", authorized_key, 0o600)
    os.chmod(_host_path(root, "root/.ssh/authorized_keys").parent, 0o700)  # no link: _put refused one there


def write_dns_config(
    root: Path,
    tsig_secret: str,
    student_secrets: Mapping[str, str] | None = None,
    signing_keys: Mapping[str, str] | None = None,
) -> None:
    """Install the lab zones and BIND's configuration into the DNS host's root, with the zones' ``signing_keys``
    (file name -> text, as :func:`dns.read_signing_keys` read them in an earlier life of the lab; none: BIND makes
    new ones)."""
    from mailkit.lab import dns

    bind = _owner(root, "bind")
    for name, text in dns.named_conf(tsig_secret, student_secrets).items():
        _put(root, f"etc/bind/{name}", text, 0o640, (0, bind[1]))
    for zone, text in dns.zone_files().items():
        _put(root, f"var/lib/bind/{dns.zone_filename(zone)}", text, 0o644, bind)
    keys = _host_path(root, dns.KEY_DIRECTORY)
    if keys.is_symlink():
        raise LabError(f"{dns.KEY_DIRECTORY} is a link in the DNS host's tree: not followed")
    keys.mkdir(mode=0o750, exist_ok=True)
    base = uid_base(root)
    os.chown(keys, base + bind[0], base + bind[1], follow_symlinks=False)
    for name, text in (signing_keys or {}).items():
        if not dns.KEY_FILE.fullmatch(name):
            raise LabError(f"not a signing key's file name: {name!r}")
        mode = 0o600 if name.endswith(".private") else 0o644
        _put(root, f"{dns.KEY_DIRECTORY}/{name}", text, mode, bind)


def write_certificate(root: Path, paths: tuple[str, str], chain: bytes, key: bytes) -> None:
    """A server certificate (with its chain, 0644) and its key (root only, 0600) where ``paths`` say, before the
    host boots: as a hosting provider hands a customer's server over with one."""
    cert_path, key_path = paths
    _put(root, cert_path, chain.decode())
    _put(root, key_path, key.decode(), 0o600)


def trust_ca(root: Path, ca_pem: bytes, name: str = "mailkit-lab") -> None:
    """Make a host trust the lab CA before it boots: where update-ca-certificates keeps local CAs, and
    appended to the bundle every TLS client reads (what update-ca-certificates would do, without its cost)."""
    local = f"usr/local/share/ca-certificates/{name}.crt"
    _put(root, local, ca_pem.decode())
    current = _read(root, "etc/ssl/certs/ca-certificates.crt")
    _put(root, "etc/ssl/certs/ca-certificates.crt", current + ca_pem.decode())
    # Clients that look CAs up by subject hash (OpenSSL's CApath) need the hash link too. The machine's openssl
    # computes it (the hash is the same in every OpenSSL since 1.0): never a program of the host's tree, which
    # its root may have replaced, run as the machine's root.
    digest = run_local(["openssl", "x509", "-hash", "-noout"], input=ca_pem.decode()).stdout.strip()
    if not digest.isalnum():
        raise LabError(f"openssl gave no subject hash for the CA: {digest!r}")
    link = _host_path(root, f"etc/ssl/certs/{digest}.0")
    link.unlink(missing_ok=True)
    link.symlink_to("/" + local)
    os.lchown(link, uid_base(root), uid_base(root))


def nspawn_argv(root: Path, spec: HostSpec) -> list[str]:
    """How a host boots: in a user namespace of its own (its root is not the machine's: UID 0 inside is an
    unprivileged UID here, picked per host) and a network namespace made with it, so owned by it: its root may set
    a firewall, as on a rented server. Its ``eth0`` is moved in from the namespace it is started in (:func:`boot`);
    the switch port at the other end stays the machine's (:func:`mailkit.lab.network.port_guard`)."""
    return [
        "systemd-nspawn",
        "--quiet",
        f"--directory={root}",
        f"--machine={spec.machine_name}",
        "--boot",
        "--register=no",
        "--keep-unit",
        "--private-users=pick",
        "--private-users-ownership=chown",
        "--resolv-conf=off",
        "--timezone=off",
        "--link-journal=no",
        "--console=read-only",
        "--private-network",
        "--network-interface=eth0",
    ]


# Move this shell into the host's own cgroups, then become systemd-nspawn.
_BOOT_SCRIPT = (
    'for cg in "$@"; do [ "$cg" = -- ] && break; echo $$ > "$cg/cgroup.procs"; done\n'
    'while [ "$1" != -- ]; do shift; done; shift\nexec "$@"\n'
)


def boot(paths: HostPaths, spec: HostSpec) -> int:
    """Start systemd-nspawn in the background; return its pid."""
    cgroups = [m / spec.machine_name for m in cgroup_mounts()]
    for cg in cgroups:
        cg.mkdir(exist_ok=True)
    env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
    # Started inside the host's network namespace rather than told to join it: a process in the new user
    # namespace may not join one the machine owns (nspawn's --network-namespace-path fails with EPERM).
    in_namespace = ["nsenter", f"--net={NETNS_DIR}/{spec.netns}", "--"]
    # nspawn waits for udev to have seen an interface it moves while /sys is writable; udev never sees interfaces
    # in other namespaces (nor runs on every machine), so nspawn sees /sys read-only, in a mount namespace of
    # its own: the machine's /sys is untouched.
    sys_read_only = ["unshare", "--mount", "--", "sh", "-c", 'mount -o remount,bind,ro /sys && exec "$@"', "sh"]
    nspawn = nspawn_argv(paths.root, spec)
    with open(paths.log, "ab") as log:
        proc = subprocess.Popen(
            ["sh", "-c", _BOOT_SCRIPT, "sh", *map(str, cgroups), "--", *in_namespace, *sys_read_only, *nspawn],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    return proc.pid


def host_netns(spec: HostSpec, pid: int, paths: HostPaths, timeout: float = 30) -> Path:
    """The booted host's own network namespace (``/proc/PID/ns/net`` of its init), once its ``eth0`` is there."""
    started = NETNS_DIR / spec.netns
    outer = os.stat(started).st_ino
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            tail = paths.log.read_text(errors="replace")[-2000:] if paths.log.exists() else ""
            raise LabError(f"host {spec.name} stopped while booting:\n{tail}")
        for child in _children(pid):
            netns = Path(f"/proc/{child}/ns/net")
            with contextlib.suppress(OSError):
                if os.stat(netns).st_ino != outer and (Path(f"/proc/{child}/comm").read_text().strip() == "systemd"):
                    return netns
        time.sleep(0.02)
    raise LabError(f"host {spec.name} did not start its init within {timeout:.0f} s")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def wait_for_ssh(spec: HostSpec, pid: int, paths: HostPaths, timeout: float = 60) -> float:
    """Wait until the host's sshd sends its banner; return how long that took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if not pid_alive(pid):
            tail = paths.log.read_text(errors="replace")[-2000:] if paths.log.exists() else ""
            raise LabError(f"host {spec.name} stopped while booting:\n{tail}")
        try:
            with socket.create_connection((spec.address, 22), timeout=1) as sock:
                sock.settimeout(2)
                if sock.recv(4).startswith(b"SSH-"):
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.05)
    raise LabError(f"host {spec.name} did not answer SSH on {spec.address}:22 within {timeout:.0f} s")


INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")


def inotify_instances_for(hosts: int) -> int:
    """inotify instances a booted systemd needs, for ``hosts`` hosts plus the machine's own (root's limit is per
    user: every host's systemd, journald and logind count against it; Debian's default of 128 is used up by about
    20 hosts, and the next systemd dies with "Too many open files").

    >>> inotify_instances_for(33)
    1312
    """
    return 256 + 32 * hosts


def ensure_inotify_instances(hosts: int) -> None:
    """Raise the machine's ``fs.inotify.max_user_instances`` when ``hosts`` hosts need more (never lower it)."""
    wanted = inotify_instances_for(hosts)
    if int(INOTIFY_INSTANCES.read_text()) < wanted:
        INOTIFY_INSTANCES.write_text(f"{wanted}\n")


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:  # a zombie is not alive
        return stat.read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def pid_is(pid: int | None, program: str) -> bool:
    """``pid`` is alive *and* runs ``program``: a PID from an old state file may belong to anyone now.

    >>> pid_is(os.getpid(), "no-such-program-mailkit")
    False
    """
    if not pid_alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(argv) and Path(argv[0].decode(errors="replace")).name == program


def _cgroup_pids(cg: Path) -> list[int]:
    """Every process in ``cg`` and below. A host being killed removes its groups meanwhile: a group gone while
    it is listed is passed over (os.walk ignores it), its processes gone with it."""
    pids: list[int] = []
    for folder, _, files in os.walk(cg):
        if "cgroup.procs" in files:
            with contextlib.suppress(OSError):
                pids += [int(p) for p in Path(folder, "cgroup.procs").read_text().split()]
    return pids


def stop(paths: HostPaths, spec: HostSpec, pid: int | None, timeout: float = 15) -> None:
    """Halt the host cleanly (SIGTERM makes nspawn shut systemd down), then clean up after it. ``timeout=0``: a
    host whose disk is thrown away next is not waited for (its services' clean stop is for a disk that is kept:
    a finished mail host takes 10-15 s, rspamd's workers alone up to 16 s)."""
    cgroups = [m / spec.machine_name for m in cgroup_mounts()]
    if pid_is(pid, "systemd-nspawn"):  # never signal a PID the system has given to someone else
        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    # Anything still in the host's cgroups (a hung halt) is killed: down leaves no process behind.
    for _ in range(50):
        leftovers = [p for cg in cgroups if cg.exists() for p in _cgroup_pids(cg)]
        if not leftovers:
            break
        for p in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        time.sleep(0.1)
    _reap(pid)
    if os.path.ismount(paths.root):
        run_local(["umount", str(paths.root)], check=False)
        if os.path.ismount(paths.root):
            run_local(["umount", "--lazy", str(paths.root)])
    for cg in cgroups:
        _remove_cgroup(cg)


def _reap(pid: int | None) -> None:
    if not pid:
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _remove_cgroup(cg: Path) -> None:
    if not cg.exists():
        return
    for folder, _, _ in sorted(os.walk(cg), key=lambda walked: len(Path(walked[0]).parts), reverse=True):
        with contextlib.suppress(FileNotFoundError):
            Path(folder).rmdir()


def host_memory_kib(spec: HostSpec) -> int:
    """Proportional set size of every process of the host, in KiB (for the benchmark)."""
    total = 0
    for cg in cgroup_mounts():
        pids = _cgroup_pids(cg / spec.machine_name)
        if not pids:
            continue
        for pid in set(pids):
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        break
    return total


def wipe(paths: HostPaths) -> None:
    """Forget a host's writable layer (it must be stopped)."""
    if paths.top.exists():
        shutil.rmtree(paths.top)
