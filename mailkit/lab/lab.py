"""The lab as a whole: up, down, reset and status of its three hosts, the apt proxy and the network.

Every step is recorded in ``state.json`` as it happens, so ``down`` can always undo a partial ``up``.

>>> Lab().status()["state"] in ("up", "down", "broken")  # doctest: +SKIP
True
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import shlex
import shutil
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mailkit.core import engine
from mailkit.core.errors import LabError, UsageError
from mailkit.core.local import run_local, write_private
from mailkit.core.progress import Progress
from mailkit.core.resources import Directory, File
from mailkit.core.ssh import Connection
from mailkit.core.values import Password
from mailkit.lab import dns, machine, network, proxy, rootfs, snapshots
from mailkit.lab.ca import CertificateAuthority
from mailkit.lab.layout import (
    DEFAULT_RELEASE,
    EXTERNAL_PROXY,
    HOSTS,
    MAX_STUDENTS,
    PREFIX,
    RELEASES,
    HostSpec,
    host_spec,
    state_dir,
    student_name,
    student_spec,
)
from mailkit.server import certificates

REQUIRED_TOOLS = (
    "debootstrap", "systemd-nspawn", "apt-cacher-ng", "ip", "nft", "unshare", "ssh-keygen", "mount", "openssl",
)  # fmt: skip


def _quiet(_: str) -> None:
    pass


def check_release(release: str) -> str:
    if release not in RELEASES:
        raise UsageError(f"unknown release {release!r}: choose one of {', '.join(RELEASES)}")
    return release


def check_can_run_lab() -> None:
    """The lab needs root and a few Debian tools; say exactly which is missing."""
    if os.geteuid() != 0:
        raise UsageError("the lab needs root (namespaces, mounts, cgroups): run it as root or with sudo")
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        raise UsageError(
            f"missing {', '.join(missing)}: install with "
            "'apt-get install debootstrap systemd-container apt-cacher-ng iproute2 nftables openssh-client "
            "openssl'"
        )


class Lab:
    """The lab on this machine. Cheap to create; nothing happens until a method is called."""

    def __init__(self, state: Path | None = None) -> None:
        self.dir = state or state_dir()

    # -- paths and recorded state ------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    @property
    def client_key(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        return self.dir / "ssh_config"

    @property
    def tsig_file(self) -> Path:
        return self.dir / "tsig.secret"

    @property
    def signing_keys_dir(self) -> Path:
        """The zones' DNSSEC keys, kept from the lab's first life: its root key, the trust anchor written into a
        server's resolver (and so into a part snapshot), stays the same when the lab comes up again."""
        return self.dir / "dnssec-keys"

    def _signing_keys(self) -> dict[str, str]:
        folder = self.signing_keys_dir
        if not folder.is_dir():
            return {}
        return {p.name: p.read_text() for p in sorted(folder.iterdir()) if dns.KEY_FILE.fullmatch(p.name)}

    def _keep_signing_keys(self) -> None:
        """Keep the keys BIND signs with now, when they are not the ones kept (the first life, or BIND made new)."""
        with Connection(HOSTS["dns"].fqdn, ssh_config=self.ssh_config) as conn:
            keys = dns.read_signing_keys(conn)
        if not keys or keys == self._signing_keys():
            return
        folder = self.signing_keys_dir
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(mode=0o700)
        for name, text in keys.items():
            write_private(folder / name, text.encode())

    def host_paths(self, name: str) -> machine.HostPaths:
        return machine.HostPaths(self.dir / "hosts" / name)

    def host_key(self, name: str) -> Path:
        return self.dir / "hostkeys" / f"{name}_ed25519"

    def _read(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def _write(self, state: dict[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
        tmp.rename(self.state_file)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        with open(self.dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    # -- facts ---------------------------------------------------------------------------------
    def hosts(self, state: dict[str, Any] | None = None) -> dict[str, HostSpec]:
        """Every host of the running lab: the three fixed ones and the students' (workshop mode)."""
        students = (state if state is not None else self._read()).get("students", 0)
        return {**HOSTS, **{student_name(n): student_spec(n) for n in range(1, students + 1)}}

    def status(self) -> dict[str, Any]:
        """What is running: ``{"state", "release", "hosts": {name: {address, hostname, running}}}``."""
        state = self._read()
        hosts: dict[str, Any] = {}
        for name, spec in self.hosts(state).items():
            pid = state.get("hosts", {}).get(name, {}).get("pid")
            hosts[name] = {
                "address": spec.address,
                "address6": spec.address6,
                "hostname": spec.fqdn,
                "running": machine.pid_alive(pid),
            }
        running = [h["running"] for h in hosts.values()]
        if not state:
            overall = "down"
        elif all(running) and (EXTERNAL_PROXY or machine.pid_alive(state.get("proxy_pid"))):
            overall = "up"
        else:
            overall = "broken"
        return {"state": overall, "release": state.get("release"), "hosts": hosts}

    def tsig_secret(self) -> str:
        try:
            return self.tsig_file.read_text().strip()
        except OSError as exc:
            raise LabError("the lab is not up (no DNS update key): run 'mailkit lab up'") from exc

    def require_up(self) -> dict[str, Any]:
        status = self.status()
        if status["state"] != "up":
            raise LabError(f"the lab is {status['state']}: run 'mailkit lab up'")
        return status

    # -- actions -------------------------------------------------------------------------------
    def up(self, release: str = DEFAULT_RELEASE, progress: Progress = _quiet) -> bool:
        """Bring the lab up on ``release``; return False when it already was (nothing done)."""
        check_release(release)
        check_can_run_lab()
        with self._locked():
            status = self.status()
            if status["state"] == "up":
                if status["release"] != release:
                    raise UsageError(f"the lab is up with {status['release']}: run 'mailkit lab down' before {release}")
                return False
            if status["state"] == "broken":
                progress("cleaning up a lab that is partly up")
                self._down()
            lowers: dict[str | None, list[Path]] = {None: [rootfs.ensure_base(release, progress)]}
            for role in {spec.layer for spec in HOSTS.values() if spec.layer}:
                lowers[role] = [rootfs.ensure_layer(release, role, progress), lowers[None][0]]
            try:
                self._start(release, lowers, progress)
            except BaseException:
                self._down()
                raise
            return True

    def _start(self, release: str, lowers: dict[str | None, list[Path]], progress: Progress) -> None:
        self._make_keys()
        state: dict[str, Any] = {"release": release, "hosts": {}}
        self._write(state)
        progress("creating the lab network on 198.51.100.0/24")
        network.delete_all()
        network.create_switch()
        state["proxy_pid"] = None if EXTERNAL_PROXY else proxy.start(self.dir)
        self._write(state)
        for spec in HOSTS.values():
            network.create_host_network(spec)
            state["hosts"][spec.name] = {"pid": self._boot(spec, lowers[spec.layer])}
            self._write(state)
        progress("waiting for SSH on every host")
        for spec in HOSTS.values():
            machine.wait_for_ssh(spec, state["hosts"][spec.name]["pid"], self.host_paths(spec.name))
        self._write_client_files()
        progress("the lab's zones signed (DNSSEC): each DS in its parent, the root's key the lab's trust anchor")
        state["root_anchor"] = dns.publish_chain(self.tsig_secret())
        self._write(state)
        self._keep_signing_keys()

    def root_anchor(self) -> str:
        """The lab's DNSSEC trust anchor: its root zone's key as a DS record (``. IN DS ...``), as IANA's is."""
        anchor = self._read().get("root_anchor")
        if not isinstance(anchor, str) or not anchor.startswith(". IN DS "):
            raise LabError("the lab has no DNSSEC trust anchor: bring it up again ('mailkit lab down', 'up')")
        return anchor

    def _boot(self, spec: HostSpec, lowers: list[Path], *, from_snapshot: bool = False) -> int:
        """Boot ``spec`` over ``lowers``; a host from a snapshot keeps the resolver its guide set (part 3 section 13:
        its own Unbound), a fresh one is given the lab's name server."""
        paths = self.host_paths(spec.name)
        machine.mount_root(paths, lowers)
        authorized = self.client_key.with_suffix(".pub").read_text()
        if self.student_key(spec.name).exists():
            authorized += self.student_key(spec.name).with_suffix(".pub").read_text()
        machine.write_identity(paths.root, spec, self.host_key(spec.name), authorized, resolver=not from_snapshot)
        if spec.name == "dns":
            machine.write_dns_config(paths.root, self.tsig_secret(), self.student_dns_secrets(), self._signing_keys())
        if spec.name != "dns":  # as real hosts trust public CAs
            machine.trust_ca(paths.root, self.ca.ensure())
        if self.student_key(spec.name).exists():  # a student's server comes with its certificates, as a rented one may
            for name in (spec.fqdn, *(f"mta-sts.{domain}" for domain in spec.mail_domains)):  # part 3 section 14's
                chain, key = self.ca.certificate(name)
                machine.write_certificate(paths.root, certificates.default_paths(name), chain, key)
        pid = machine.boot(paths, spec)
        network.configure_host(spec, machine.host_netns(spec, pid, paths))
        return pid

    @property
    def ca(self) -> CertificateAuthority:
        """The lab's certificate authority: it issues the mail host's certificate; lab clients trust it."""
        return CertificateAuthority(self.dir / "ca")

    def _make_keys(self, hosts: dict[str, HostSpec] = HOSTS) -> None:
        """The client key, one host key per host and the DNS update secret, made once per lab."""
        if not self.client_key.exists():
            run_local(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mailkit-lab", "-f", str(self.client_key)])
        for name, spec in hosts.items():
            key = self.host_key(name)
            key.parent.mkdir(mode=0o700, exist_ok=True)
            if not key.exists():
                run_local(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", spec.fqdn, "-f", str(key)])
        if not self.tsig_file.exists():
            write_private(self.tsig_file, (dns.new_tsig_secret() + "\n").encode())

    def _write_client_files(self) -> None:
        """known_hosts from the keys the lab made (no trust on first use), and an ssh_config for aliases."""
        lines, config = [], [f"# Written by mailkit for the lab in {self.dir}"]
        for name, spec in self.hosts().items():
            lines.append(self._known_hosts_line(name, spec))
            config += [
                f"Host {name} {spec.fqdn} {spec.address}",
                f"    HostName {spec.address}",
                "    User root",
                f"    IdentityFile {self.client_key}",
                "    IdentitiesOnly yes",
                f"    UserKnownHostsFile {self.known_hosts}",
                "    StrictHostKeyChecking yes",
                "",
            ]
        self.known_hosts.write_text("\n".join(lines) + "\n")
        self.ssh_config.write_text("\n".join(config))

    def down(self) -> bool:
        """Stop everything the lab started; return False when nothing was there."""
        check_can_run_lab()
        with self._locked():
            return self._down()

    def _down(self) -> bool:
        state = self._read()
        leftovers = bool(state) or bool(network.lab_namespaces()) or bool(self._lab_mounts())
        for name, spec in self.hosts(state).items():
            pid = state.get("hosts", {}).get(name, {}).get("pid")
            machine.stop(self.host_paths(name), spec, pid)
            machine.wipe(self.host_paths(name))
        proxy_pid = state.get("proxy_pid")
        if proxy_pid is not None and machine.pid_is(proxy_pid, "apt-cacher-ng"):
            os.kill(proxy_pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while machine.pid_alive(proxy_pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if machine.pid_is(proxy_pid, "apt-cacher-ng"):
                os.kill(proxy_pid, signal.SIGKILL)
        for mount in self._lab_mounts():
            run_local(["umount", "--lazy", mount], check=False)
        network.delete_all()
        for path in (self.state_file, self.tsig_file, self.known_hosts, self.ssh_config):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.dir / "students", ignore_errors=True)
        return leftovers

    def _lab_mounts(self) -> list[str]:
        prefix = str(self.dir) + "/"
        with open("/proc/self/mounts") as mounts:
            return [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]

    def reset(
        self,
        progress: Progress = _quiet,
        name: str = "mail",
        to_part: int = 0,
        keep_dns: bool = False,
        *,
        forget_receiver: bool = True,
    ) -> str:
        """A fresh ``mail`` host (a reinstalled server), same addresses, same host key; the lab DNS as at ``up``
        (``keep_dns``: as it is now, as a registrar keeps a lost server's records: the restore drill).

        ``to_part`` K: the mail host at the end of the guide's part K, booted from the snapshot the same inputs
        made (:mod:`mailkit.lab.snapshots`) with the DNS zones of that moment; when there is none, the guide builds
        it now on the fresh host and it is kept for next time. ``name`` may be a student's host instead (a fresh one
        only): then only that student's DNS records are put back (``forget_receiver`` False: the receiver's caches
        of them are the caller's to clear, as :meth:`boot_part`'s). Returns what was done, in words.
        """
        check_can_run_lab()
        if not to_part:
            self._boot_afresh(name, progress, keep_dns=keep_dns, forget_receiver=forget_receiver)
            return "a fresh host" + (", the DNS records kept" if keep_dns else "")
        if name != snapshots.MAIL:
            raise UsageError(f"{name} is a student's: 'mailkit workshop reset {name} --to-part {to_part}'")
        start = self.boot_part(name, to_part, progress)
        if start is not None and start.part == to_part:
            return f"part {to_part} from snapshot {start.name}"
        first = 1 if start is None else start.part + 1
        self._build_parts(range(first, to_part + 1), progress)
        kept, _ = self.keep_snapshot(to_part, progress)
        on = "" if start is None else f" on snapshot {start.name}"
        return f"parts {first}-{to_part} built by the guide{on}, kept as snapshot {kept.name}"

    def boot_part(
        self, name: str, to_part: int, progress: Progress = _quiet, *, forget_receiver: bool = True
    ) -> snapshots.Snapshot | None:
        """Boot host ``name`` afresh from its newest snapshot on the way to part ``to_part`` (part K itself, else the
        highest part below it, to build on); returns it, or None when there is none (the host boots fresh).
        ``forget_receiver``: False when the caller makes the receiver forget once for several students
        (:meth:`forget_receiver_cache`)."""
        self._check_snapshot_target(name, to_part)
        found = (self._snapshot_for(p, name) for p in range(to_part, 0, -1))
        start = next((s for s in found if s is not None), None)
        self._boot_afresh(name, progress, start, forget_receiver=forget_receiver)
        return start

    def _boot_afresh(
        self,
        name: str,
        progress: Progress,
        snapshot: snapshots.Snapshot | None = None,
        keep_dns: bool = False,
        *,
        forget_receiver: bool = True,
    ) -> None:
        with self._locked():
            state = self._read()
            status = self.status()
            if status["state"] != "up":
                raise LabError(f"the lab is {status['state']}: run 'mailkit lab up'")
            hosts = self.hosts(state)
            if name not in hosts or name in ("dns", "outside"):
                raise UsageError(f"{name!r} is not a mail host of this lab: choose mail or a student")
            spec = hosts[name]
            records = None if snapshot is None or name == "mail" else snapshot.zones.get(snapshots.STUDENT_RECORDS)
            if name != "mail" and snapshot is not None and records is None:
                raise LabError(f"snapshot {snapshot.name} keeps no DNS records of {name}'s domain")
            progress(f"stopping {name}")
            machine.stop(self.host_paths(name), spec, state["hosts"][name]["pid"], timeout=0)  # its disk goes next
            # The DNS first, then the host, as a real server finds its DNS when it boots: one from a snapshot starts
            # its own resolver at boot (part 3), which would otherwise meet the name server restarting below.
            if name == "mail":
                if not keep_dns:
                    progress("restoring the lab DNS zones")
                    self._restore_zones(None if snapshot is None else snapshot.zones)
                    for number in range(1, state.get("students", 0) + 1):
                        self._publish_student(number)
            else:
                progress(f"restoring {name}'s DNS records")
                self._publish_student(int(name[7:]))
                if records is not None:  # and what their run had published (DKIM, SPF, DMARC, TLSA, ...)
                    dns.add_records(student_spec(int(name[7:])).domain, records, self.tsig_secret())
            pid = self._boot_from(state, spec, snapshot, progress, wait=False)
            provider = name == "mail" and state.get("provider", False)
        # After the lock: students' hosts reset at once (workshop reset) boot side by side, and the receiver's
        # restart (OpenDMARC takes 5 s to stop) is one for all of them (forget_receiver False, the caller's).
        if name != "mail" and forget_receiver:
            self.forget_receiver_cache()
        self._wait_up(spec, pid, from_snapshot=snapshot is not None)
        if provider:  # the fresh server as the provider hands it over: admin with sudo, the provider's resolver
            from mailkit.lab import provider as provider_mode

            provider_mode.prepare_mail_host(self, progress)

    def _boot_from(
        self,
        state: dict[str, Any],
        spec: HostSpec,
        snapshot: snapshots.Snapshot | None,
        progress: Progress,
        wait: bool = True,
    ) -> int:
        """Boot the stopped host ``spec`` with a new writable layer over ``snapshot`` (None: the base image alone)
        and (``wait``) wait until it is up; returns its PID. The caller holds the lab's lock and writes nothing else
        of ``state`` meanwhile."""
        paths = self.host_paths(spec.name)
        machine.wipe(paths)
        network.create_host_network(spec)
        base = rootfs.ensure_base(state["release"], progress)
        layers = [] if snapshot is None else snapshots.lowers(self.snapshot_store, snapshot)
        progress(f"booting {spec.name} " + (f"from snapshot {snapshot.name}" if snapshot else "as a fresh host"))
        state["hosts"][spec.name]["pid"] = self._boot(spec, [*layers, base], from_snapshot=snapshot is not None)
        state["hosts"][spec.name]["snapshot"] = None if snapshot is None else snapshot.name
        self._write(state)
        pid: int = state["hosts"][spec.name]["pid"]
        if wait:
            self._wait_up(spec, pid, from_snapshot=snapshot is not None)
        return pid

    def _wait_up(self, spec: HostSpec, pid: int, from_snapshot: bool) -> None:
        """Until the booted host answers SSH, and one from a snapshot has finished booting."""
        machine.wait_for_ssh(spec, pid, self.host_paths(spec.name))
        if from_snapshot:
            self._wait_until_booted(spec)

    # -- part snapshots ------------------------------------------------------------------------------
    @property
    def snapshot_store(self) -> Path:
        return self.dir / "snapshots"

    def _check_snapshot_target(self, name: str, part: int) -> None:
        if part not in snapshots.PARTS:
            raise UsageError(f"--to-part must be one of {', '.join(map(str, snapshots.PARTS))}, not {part}")
        self.require_up()
        if name != snapshots.MAIL and not (name.startswith("student") and name in self.hosts()):
            raise UsageError(f"part snapshots are of the lab's mail host or a student's, not of {name!r}")
        if name == snapshots.MAIL and self._read().get("provider"):
            raise UsageError("provider mode gives the reader a fresh server to build on: 'mailkit lab provider --off'")

    def snapshot_digest(self, part: int, name: str = snapshots.MAIL) -> str:
        """What a snapshot of host ``name`` (the mail host or a student's) at the end of parts 1..``part`` on the
        running lab's release depends on (:mod:`snapshots`)."""
        from mailkit.guide.runner import notebooks_for

        release = self.require_up()["release"]
        identity = {
            "ca": self.ca.ensure(),
            "host key": self.host_key(name).with_suffix(".pub").read_bytes(),
            "passwords": self._password_secret(),
            # Part 3 writes the lab's root key into the server's resolver (section 13): a snapshot from a lab whose
            # DNS was signed with other keys would validate nothing (every name a temporary failure).
            "root anchor": self.root_anchor().encode(),
        }
        if name != snapshots.MAIL:  # the student's login key is in the layer (their run's account): theirs alone
            identity["student key"] = self.student_key(name).with_suffix(".pub").read_bytes()
        base = rootfs.build_id(rootfs.ensure_base(release, _quiet))
        notebooks = notebooks_for(range(1, part + 1))
        return snapshots.inputs_digest(release, base, notebooks, identity)

    def _snapshot_for(self, part: int, name: str = snapshots.MAIL) -> snapshots.Snapshot | None:
        release = self.require_up()["release"]
        return snapshots.find(self.snapshot_store, release, part, self.snapshot_digest(part, name), name)

    def _build_parts(self, parts: Sequence[int], progress: Progress) -> None:
        """The guide's ``parts`` on the mail host, as ``mailkit guide run`` applies them."""
        import tempfile

        from mailkit.guide.runner import run_guide
        from mailkit.server.target import DEMOS_ENV

        with tempfile.TemporaryDirectory(prefix="mailkit-snapshot-") as tmp:
            # The optional demo changes nothing it does not put back: a snapshot need not wait for it.
            environ = {DEMOS_ENV: "no"}
            run = run_guide(list(parts), Path(tmp), target="lab:mail", progress=progress, environ=environ)
        if not run.ok:
            failed = "; ".join(f"{c.name}: {c.detail}" for c in run.checks if not c.ok)
            raise LabError(
                f"the guide's parts {list(parts)} failed on the mail host, nothing kept: {run.error or failed}"
            )

    def keep_snapshot(
        self, part: int, progress: Progress = _quiet, name: str = snapshots.MAIL
    ) -> tuple[snapshots.Snapshot, bool]:
        """Keep host ``name`` (the mail host or a student's) as it is as the snapshot of part ``part`` (the caller
        ran the guide's parts 1..part on it, and nothing else), with the lab's zones (a student's: their domain's
        records); the host goes on from it. Returns the snapshot and whether it is new (False: the same inputs had
        made one already, kept as it was: "no change")."""
        self._check_snapshot_target(name, part)
        release = self.require_up()["release"]
        digest = self.snapshot_digest(part, name)
        existing = snapshots.find(self.snapshot_store, release, part, digest, name)
        if existing is not None:
            return existing, False
        paths = self.host_paths(name)
        with self._locked():
            state = self._read()
            spec = self.hosts(state)[name]
            parent = state["hosts"][name].get("snapshot")
            if name == snapshots.MAIL:
                zones = self.zones()
            else:
                zones = {snapshots.STUDENT_RECORDS: dns.records_under(spec.domain, self.tsig_secret())}
            progress(f"stopping {name} to keep its state")
            machine.stop(paths, spec, state["hosts"][name]["pid"])
            self.snapshot_store.mkdir(mode=0o700, exist_ok=True)
            kept = snapshots.keep(
                self.snapshot_store,
                snapshots.name_of(release, part, digest, name),
                paths.upper,
                zones,
                release,
                part,
                parent,
                name,
            )
            self._boot_from(state, spec, kept, progress)
            current = {snapshots.name_of(release, p, self.snapshot_digest(p, name), name) for p in snapshots.PARTS}
            for path in snapshots.replaced(self.snapshot_store, release, current | {kept.name}, name):
                progress(f"removing snapshot {path.name}: its inputs changed")
                shutil.rmtree(path)
        return kept, True

    def snapshot_report(self, clear: bool = False) -> list[str]:
        """One line per kept snapshot: current (this lab's inputs would use it), in use, or stale; ``clear``
        removes every one that is not in use."""
        state = self._read()
        running = {h.get("snapshot") for h in state.get("hosts", {}).values()} - {None}
        in_use = snapshots.with_parents(self.snapshot_store, running)
        up = self.status()["state"] == "up"
        lines = []
        hosts = self.hosts(state) if up else {}
        for found in snapshots.listing(self.snapshot_store):
            here = up and found.release == state.get("release") and found.host in hosts
            current = here and found == self._snapshot_for(found.part, found.host)
            how = "in use" if found.name in in_use else "current" if current else "stale (its inputs changed)"
            if clear and found.name not in in_use:
                shutil.rmtree(found.path)
                how = "removed"
            lines.append(f"{found.name}  part {found.part}  {how}")
        return lines or ["no snapshots: 'mailkit lab reset --to-part K' makes one"]

    def _wait_until_booted(self, spec: HostSpec) -> None:
        """A host from a snapshot answers SSH before its mail services are up: wait for systemd to finish booting,
        as a reader's server has when they log in."""
        with Connection(spec.fqdn, ssh_config=self.ssh_config) as conn:
            seen = conn.run(["systemctl", "is-system-running", "--wait"], check=False, timeout=120).stdout.strip()
        if seen not in ("running", "degraded"):
            raise LabError(f"{spec.name} did not finish booting: systemd says {seen or 'nothing'}")

    def zones(self) -> dict[str, str]:
        """The lab zones as the name server serves them now, updates included, without what signing added."""
        return dns.served_zones(self.tsig_secret())

    def connection(self, name: str) -> Connection:
        """A connection to the lab host ``name``, with the lab's key, ssh_config and known_hosts."""
        spec = host_spec(name)
        if spec is None:
            raise UsageError(f"no lab host {name!r}: choose one of {', '.join(HOSTS)} or a student (student01)")
        self.require_up()
        if name not in self.hosts():
            raise UsageError(f"the lab has no {name}: 'mailkit workshop up --students N' makes student hosts")
        return Connection(spec.fqdn, ssh_config=self.ssh_config)

    def passwords(self, mailboxes: Sequence[str]) -> dict[str, Password]:
        """Passwords for lab mailboxes, derived from a secret in the lab's state (root only): stable across runs."""
        key = self._password_secret()
        return {
            str(m): Password(
                base64.urlsafe_b64encode(hmac.new(key, str(m).encode(), hashlib.sha256).digest()[:18]).decode()
            )
            for m in mailboxes
        }

    def _password_secret(self) -> bytes:
        secret_file = self.dir / "passwords.secret"
        if not secret_file.exists():
            secret_file.parent.mkdir(parents=True, exist_ok=True)
            write_private(secret_file, secrets.token_hex(32).encode())
        return secret_file.read_text().strip().encode()

    def provider_down(self) -> None:
        """Provider mode off: the next reset gives a plain lab mail host (the CA and resolver stay, unused)."""
        with self._locked():
            state = self._read()
            state.pop("provider", None)
            self._write(state)

    def provider_up(self, progress: Progress = _quiet) -> None:
        """Provider mode on the running lab (:mod:`mailkit.lab.provider`); kept across resets of the mail host."""
        from mailkit.lab import provider as provider_mode

        self.require_up()
        provider_mode.setup(self, progress)
        with self._locked():
            state = self._read()
            state["provider"] = True
            self._write(state)

    # -- workshop mode: a mail host per student ---------------------------------------------------
    def student_dns_key(self, name: str) -> Path:
        """The DNS update key a student publishes their own records with (their domain's names, nothing else)."""
        return self.dir / "students" / name / "dns.key"

    def student_dns_secrets(self) -> dict[str, str]:
        """Each student domain's update key secret, for BIND's configuration."""
        from mailkit.domain.registrar import read_tsig_key

        found = {}
        for number in range(1, self._read().get("students", 0) + 1):
            path = self.student_dns_key(student_name(number))
            if path.exists():
                found[student_spec(number).domain] = read_tsig_key(path).secret
        return found

    def _configure_student_keys(self) -> None:
        """Give the running DNS server the students' update keys as they are now (none after the last goes)."""
        from mailkit.core import engine
        from mailkit.core.resources import File

        files = dns.named_conf(self.tsig_secret(), self.student_dns_secrets())
        names = ("mailkit-students.key", "named.conf.local", "named.conf")
        wanted = [File(f"/etc/bind/{n}", files[n], group="bind", mode=0o640) for n in names]
        with self.connection("dns") as conn:
            if engine.apply(conn, wanted).changed:
                conn.run(["rndc", "reconfig"])

    def student_key(self, name: str) -> Path:
        """The SSH key a student logs into their own host with (and no other)."""
        return self.dir / "students" / name / "id_ed25519"

    def add_students(self, count: int, progress: Progress = _quiet) -> list[str]:
        """Give the running lab ``count`` student hosts in all (booted side by side); return the new ones."""
        check_can_run_lab()
        if not 1 <= count <= MAX_STUDENTS:
            raise UsageError(f"--students must be from 1 to {MAX_STUDENTS}, not {count}")
        with self._locked():
            state = self._read()
            if self.status()["state"] != "up":
                raise LabError("the lab is not up: run 'mailkit lab up' first")
            have = state.get("students", 0)
            if count <= have:
                return []
            new = {student_name(n): student_spec(n) for n in range(have + 1, count + 1)}
            self._make_keys(new)
            for name in new:
                key = self.student_key(name)
                key.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
                if not key.exists():
                    run_local(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)])
            base = rootfs.ensure_base(state["release"], progress)
            machine.ensure_inotify_instances(len(HOSTS) + count)
            state["students"] = count
            progress(f"booting {len(new)} student hosts")
            for name, spec in new.items():
                network.create_host_network(spec)
                state["hosts"][name] = {"pid": self._boot(spec, [base])}
                self._write(state)
            for name, spec in new.items():
                machine.wait_for_ssh(spec, state["hosts"][name]["pid"], self.host_paths(name))
            progress("opening the students' accounts on the outside host")
            self._open_outside_accounts(list(new))
            progress("publishing the students' DNS records")
            for name in new:
                self._publish_student(int(name[7:]))
            for name, spec in new.items():
                if not self.student_dns_key(name).exists():
                    statement = dns.tsig_key_statement(dns.student_key_name(spec.domain), dns.new_tsig_secret())
                    write_private(self.student_dns_key(name), statement.encode())
            self._configure_student_keys()
            self._write_client_files()
            self._write_student_logins(new)
            return list(new)

    def remove_students(self) -> int:
        """Stop and forget every student host and its DNS records; return how many there were."""
        check_can_run_lab()
        with self._locked():
            state = self._read()
            count = state.get("students", 0)
            dns_running = count > 0 and self.status()["hosts"]["dns"]["running"]
            if count and self.status()["hosts"]["outside"]["running"]:
                self._close_outside_accounts([student_name(n) for n in range(1, count + 1)])
            for number in range(1, count + 1):
                name, spec = student_name(number), student_spec(number)
                machine.stop(self.host_paths(name), spec, state["hosts"].get(name, {}).get("pid"))
                machine.wipe(self.host_paths(name))
                network.delete_host_network(spec)
                state["hosts"].pop(name, None)
                if dns_running:
                    self._publish_student(number, present=False)
            state["students"] = 0
            self._write(state)
            shutil.rmtree(self.dir / "students", ignore_errors=True)
            if dns_running:
                self._configure_student_keys()  # their keys change nothing any more
            if count:
                self._write_client_files()
            return count

    def _publish_student(self, number: int, present: bool = True) -> None:
        """A student's names in the lab DNS, as a hosting provider and a registrar would set them up: A/AAAA
        and PTR for the host, MX for the student's two domains; every other record of theirs is deleted."""
        spec = student_spec(number)
        secret = self.tsig_secret()
        domain = spec.domain
        wanted: list[tuple[str, str, list[str]]] = [
            (spec.fqdn, "A", [spec.address]),
            (spec.fqdn, "AAAA", [spec.address6]),
            (dns.reverse_name(spec.address), "PTR", [f"{spec.fqdn}."]),
            (dns.reverse_name(spec.address6), "PTR", [f"{spec.fqdn}."]),
            (domain, "MX", [f"10 {spec.fqdn}."]),
            (f"b.{domain}", "MX", [f"10 {spec.fqdn}."]),
        ]
        dns.delete_names_under(domain, secret)  # whatever the student published before (SPF, DKIM, DMARC)
        for name, rtype, values in wanted:
            dns.set_records(name, rtype, values if present else [], secret)

    def _open_outside_accounts(self, names: Sequence[str]) -> None:
        """Each student's own account on the outside host, no sudo, their key only: their notebooks' outside checks
        run there, as from a second machine of their own (they need clients, not root)."""
        with self.connection("outside") as outside:
            for name in names:
                public = self.student_key(name).with_suffix(".pub").read_text()
                outside.run(["sh", "-c", 'id -u "$1" >/dev/null 2>&1 || useradd -m -s /bin/bash "$1"', "sh", name])
                home = f"/home/{name}"
                engine.apply(
                    outside,
                    [
                        Directory(home, owner=name, group=name, mode=0o700),  # a shared host: no one reads another's
                        Directory(f"{home}/.ssh", owner=name, group=name, mode=0o700),
                        File(f"{home}/.ssh/authorized_keys", public, owner=name, group=name, mode=0o600),
                    ],
                )

    def _close_outside_accounts(self, names: Sequence[str]) -> None:
        """The students' accounts on the outside host gone, with whatever they left running or stored there."""
        script = 'for n; do id -u "$n" >/dev/null 2>&1 || continue; pkill -KILL -u "$n"; userdel -r "$n"; done; true'
        with self.connection("outside") as outside:
            outside.run(["sh", "-c", script, "sh", *names])

    def _known_hosts_line(self, name: str, spec: HostSpec) -> str:
        """The host's key as known_hosts names it: by address, full name and lab name."""
        key_type, key_b64 = self.host_key(name).with_suffix(".pub").read_text().split()[:2]
        return f"{spec.address},{spec.fqdn},{name} {key_type} {key_b64}"

    def _write_student_logins(self, students: dict[str, HostSpec]) -> None:
        """Each student's ssh_config and known_hosts: their own key, for their host (as root) and their account on
        the outside host, both keys verified from a known_hosts of their own (the lab's is root's, and names every
        host)."""
        for name, spec in students.items():
            folder = self.student_key(name).parent
            known = folder / "known_hosts"
            outside = HOSTS["outside"]
            lines = [self._known_hosts_line(name, spec), self._known_hosts_line("outside", outside)]
            known.write_text("\n".join(lines) + "\n")
            config = [f"# {name}'s logins in the lab: their own mail host, and their account on the outside host"]
            for alias, host, user in ((name, spec, "root"), ("outside", outside, name)):
                config += [
                    f"Host {alias} {host.fqdn} {host.address}",
                    f"    HostName {host.address}",
                    f"    User {user}",
                    f"    IdentityFile {self.student_key(name)}",
                    "    IdentitiesOnly yes",
                    f"    UserKnownHostsFile {known}",
                    "    StrictHostKeyChecking yes",
                    "",
                ]
            (folder / "ssh_config").write_text("\n".join(config))

    def _restore_zones(self, texts: Mapping[str, str] | None = None) -> None:
        """Put every zone back as ``up`` wrote it (what the guide published, SPF, DKIM, DMARC, is gone), or as
        ``texts`` (zone file name -> text, as a snapshot kept them) say."""
        spec = HOSTS["dns"]
        origins = {dns.zone_filename(z): z for z in dns.zone_files()}
        if texts is None:
            wanted = {dns.zone_filename(z): t for z, t in dns.zone_files().items()}
        else:  # as kept, without what signing added: the signer adds it afresh
            wanted = {name: dns.unsigned(text, origins[name]) for name, text in texts.items() if name in origins}
        files = " ".join(shlex.quote(f"/var/lib/bind/{name}") for name in wanted)
        with Connection(spec.fqdn, ssh_config=self.ssh_config) as conn:
            # The journals and, where BIND signs inline, the signed copies go with the zones they were made from.
            conn.run(["sh", "-c", f"systemctl stop named && rm -f /var/lib/bind/*.jnl /var/lib/bind/*.signed {files}"])
            for name, text in wanted.items():
                conn.write(f"/var/lib/bind/{name}", text, mode=0o644)
            conn.run(["sh", "-c", f"chown bind:bind {files} && systemctl start named"])
        anchor = dns.publish_chain(self.tsig_secret())  # the keys stayed on the DNS host: the same anchor
        state = self._read()
        if state.get("root_anchor") != anchor:
            state["root_anchor"] = anchor
            self._write(state)
        self.forget_receiver_cache()

    def forget_receiver_cache(self) -> None:
        """The receiver's verifiers cache DNS answers (a DKIM key for 5 minutes): a fresh mail host makes new keys
        under the same selector, so they start afresh too. (A real receiver would not: never reuse a selector for
        a new key.)"""

        with Connection(HOSTS["outside"].fqdn, ssh_config=self.ssh_config) as conn:
            conn.run(["systemctl", "try-restart", "opendkim", "opendmarc"])

    def set_dns_records(self, name: str, rtype: str, values: list[str], ttl: int = 300) -> None:
        """Replace records in the running lab DNS (no restart); an empty list deletes them."""
        self.require_up()
        dns.set_records(name, rtype, values, self.tsig_secret(), ttl=ttl)


def leftovers() -> list[str]:
    """Anything the lab may leave behind on the machine: namespaces, mounts, cgroups, processes."""
    found = [f"netns {n}" for n in network.lab_namespaces()]
    if network.machine_link_exists():
        found.append(f"link {network.MACHINE_LINK}")
    lab_dir = f"{state_dir()}/"
    with open("/proc/self/mounts") as mounts:
        found += [f"mount {line.split()[1]}" for line in mounts if line.split()[1].startswith(lab_dir)]
    for cg in machine.cgroup_mounts():
        found += [f"cgroup {p}" for p in cg.glob(f"{PREFIX}-*")]
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ours = f"{PREFIX}-" in cmdline if cmdline.startswith("systemd-nspawn") else lab_dir in cmdline
        if cmdline.startswith(("systemd-nspawn", "apt-cacher-ng")) and ours:
            found.append(f"process {proc.name}: {cmdline.strip()}")
    return found


def prepare_lab(release: str, keep: bool, progress: Callable[[str], None], after_part: int = 0) -> None:
    """The lab on ``release`` with its mail host at the end of part ``after_part`` (0: a fresh host; the upgrade
    chapter starts after part 4), or the mail host as it is, with ``keep``."""
    lab = Lab()
    status = lab.status()
    if status["state"] == "up" and status["release"] != release:
        if keep:
            raise UsageError(f"--keep: the lab runs {status['release']}, not {release}")
        progress(f"taking down the {status['release']} lab")
        lab.down()
    started = lab.up(release, progress=progress)
    if keep:
        if started:
            progress("the lab was down: --keep starts from a fresh mail host")
        return
    if after_part:
        progress(f"the mail host at the end of part {after_part}: {lab.reset(progress=progress, to_part=after_part)}")
    elif not started:
        progress("resetting the mail host")
        lab.reset(progress=progress)
