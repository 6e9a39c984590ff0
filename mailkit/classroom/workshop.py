"""Workshop mode: one mail host per student in the lab, their notebooks with their parameters filled in, and a
reset to the end of any part.

A student works as a reader does on their own rented server: their notebooks name their host by the alias in
their own ``ssh/config`` and take everything else from their folder's ``env`` (their key, their DNS key, their
account on the outside host, their passwords file): nothing of the lab's own keys, nothing of root's.

>>> student_parameters(2)["DOMAIN"], student_parameters(2)["TARGET"]
('student02.example.org', 'student02')
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailkit.core.errors import MailkitError, UsageError
from mailkit.core.local import write_private
from mailkit.core.progress import Progress
from mailkit.guide.chapters import SERVER_PARTS
from mailkit.guide.runner import GuideRun, inject_parameters, notebooks_for, run_guide
from mailkit.lab.layout import host_spec, student_spec
from mailkit.server import certificates

if TYPE_CHECKING:
    from mailkit.lab.lab import Lab
    from mailkit.lab.snapshots import Snapshot

#: The guide's parts a student works through (05, the upgrade, needs a bookworm server of its own).
WORKSHOP_PARTS = SERVER_PARTS


def student_parameters(number: int) -> dict[str, Any]:
    """The notebooks' parameters for student ``number``: their host, their two domains, their mailboxes."""
    from mailkit.lab.layout import BLOCKLIST_ZONE, HOSTS

    spec, outside = student_spec(number), HOSTS["outside"]
    domain, other = spec.mail_domains
    cert_file, key_file = certificates.default_paths(spec.fqdn)
    return {
        "TARGET": spec.name,  # the alias in their ssh/config
        "DOMAIN": domain,
        "HOSTNAME": spec.fqdn,
        "OTHER_DOMAINS": [other],
        "MAILBOXES": [f"alice@{domain}", f"bob@{domain}", f"carol@{other}"],
        "ALIASES": {f"info@{domain}": [f"bob@{domain}"]},
        # The lab hands their server over with certificates, for it and its MTA-STS names (no ACME CA in the class).
        "CERT_FILE": cert_file,
        "KEY_FILE": key_file,
        "BLOCKLISTS": [f"{BLOCKLIST_ZONE}*3"],  # the lab's own list (the public ones are not reachable here)
        # Their checks run from the class room's outside host and send wrong passwords on purpose: as a reader lists
        # the machine they check from, else part 4's fail2ban bans it and the checks after it are refused.
        "NEVER_BAN": [outside.address, outside.address6],
    }


def student_number(name: str) -> int:
    """``student07`` -> 7, or a usage error."""
    spec = host_spec(name)
    if spec is None or not name.startswith("student"):
        raise UsageError(f"{name!r} is not a student: say student01, student02, ...")
    return int(name[7:])


def write_student_notebooks(number: int, directory: Path, parts: Sequence[int] = WORKSHOP_PARTS) -> list[Path]:
    """The guide's notebooks of ``parts`` for one student, parameters filled in, in ``directory``."""
    import nbformat

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for source in notebooks_for(parts):
        notebook = inject_parameters(nbformat.read(source, as_version=4), student_parameters(number))
        path = directory / source.name
        nbformat.write(notebook, path)
        written.append(path)
    return written


def write_class(directory: Path, students: int) -> dict[str, list[Path]]:
    """Every student's folder: ``studentNN/`` with their notebooks, ``ssh/`` with their logins (key, ``known_hosts``
    with their host's and the outside host's keys, ``config``), their DNS key, their mailboxes' passwords, the lab
    CA and ``env``: hand it to the student's own account, which needs nothing of root's."""
    from mailkit.lab.lab import Lab

    lab = Lab()
    written = {}
    for number in range(1, students + 1):
        name = student_spec(number).name
        folder = directory / name
        written[name] = write_student_notebooks(number, folder)
        if lab.student_key(name).exists():
            write_student_kit(lab, number, folder)
    return written


def write_student_kit(lab: Any, number: int, folder: Path) -> dict[str, str]:
    """Copy student ``number``'s logins, DNS key and passwords from the lab into ``folder``; return their settings.

    ``lab`` is a :class:`mailkit.lab.lab.Lab` with the student's host up.
    """
    name = student_spec(number).name
    key = lab.student_key(name)
    ssh = folder / "ssh"
    ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(ssh / "id_ed25519", key.read_bytes())
    shutil.copy(key.parent / "known_hosts", ssh / "known_hosts")
    config = (key.parent / "ssh_config").read_text()
    for made, copied in ((key, ssh / "id_ed25519"), (key.parent / "known_hosts", ssh / "known_hosts")):
        config = config.replace(str(made), str(copied.resolve()))
    (ssh / "config").write_text(config)
    write_private(folder / "dns.key", lab.student_dns_key(name).read_bytes())
    mailboxes = student_parameters(number)["MAILBOXES"]
    passwords = "".join(f"{m} {p.reveal()}\n" for m, p in lab.passwords(mailboxes).items())
    write_private(folder / "passwords", passwords.encode())
    (folder / "lab-ca.pem").write_bytes(lab.ca.ensure())
    anchor = lab.root_anchor()
    (folder / "env").write_text(student_environment(folder, anchor))
    # For a run without JupyterLab, as on a rented server: mailkit guide run --host studentNN --params params.json
    given = {k: v for k, v in student_parameters(number).items() if k != "TARGET"}
    (folder / "params.json").write_text(json.dumps(given, indent=2) + "\n")
    return student_settings(folder, anchor)


def student_settings(folder: Path, trust_anchor: str) -> dict[str, str]:
    """A student's settings for the own-server path, all from their folder: their SSH logins (their host, and their
    account on the outside host for the outside checks), the lab's resolver, CA, root name server and DNSSEC root
    key (``trust_anchor``) and another provider's mail server, the registrar command that publishes with their own
    DNS key (their domain's names only), their passwords file; and that the class has no route to the internet."""
    from mailkit.lab.dns import NAMESERVER
    from mailkit.lab.layout import HOSTS

    registrar = f"{sys.executable} -m mailkit.cli registrar rfc2136 --server {NAMESERVER.address} "
    return {
        "MAILKIT_SSH_CONFIG": str(folder / "ssh" / "config"),
        "MAILKIT_OUTSIDE": "outside",
        "MAILKIT_NAMESERVER": NAMESERVER.address,
        "MAILKIT_TRUST_ANCHOR": trust_anchor,
        "MAILKIT_DNS_ROOT": NAMESERVER.address,  # where their server's own resolver starts (part 3 section 13)
        "MAILKIT_CA_FILE": str(folder / "lab-ca.pem"),
        "MAILKIT_REGISTRAR": registrar + f"--key-file {shlex.quote(str(folder / 'dns.key'))}",
        "MAILKIT_PASSWORDS_FILE": str(folder / "passwords"),
        "MAILKIT_OFFLINE": "yes",
        "MAILKIT_EXCHANGER": HOSTS["outside"].fqdn,  # the class room's other provider, where Gmail's would be
    }


def student_environment(folder: Path, trust_anchor: str) -> str:
    """:func:`student_settings` as shell lines (``. studentNN/env``), for the notebooks and for steps by hand.

    >>> print(student_environment(Path("/class/student01"), ". IN DS 1 13 2 AB").splitlines()[0])
    export MAILKIT_SSH_CONFIG=/class/student01/ssh/config
    """
    settings = student_settings(folder, trust_anchor)
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in settings.items())


def students_in_lab() -> int:
    from mailkit.lab.lab import Lab

    lab = Lab()
    lab.require_up()
    return sum(1 for name in lab.hosts() if name.startswith("student"))


@dataclass(frozen=True)
class StudentReset:
    """What ``workshop reset`` did: the guide's run (None when a snapshot alone brought the host there, or for
    part 0), the snapshot the host booted from and the one kept after the run (names, or None)."""

    run: GuideRun | None
    booted_from: str | None = None
    kept: str | None = None

    @property
    def ok(self) -> bool:
        return self.run is None or self.run.ok


#: How many students' hosts boot at once in :func:`reset_students` (each boot is mostly waiting for systemd).
BOOTS_AT_ONCE = 8


def reset_student(name: str, to_part: int, output: Path, progress: Progress = lambda _: None) -> StudentReset:
    """A fresh host for the student, then at the end of part ``to_part``: booted from the snapshot of that part made
    for this student (same inputs: release, mailkit, notebooks, their keys), else the guide's parts applied as the
    student applies them, from the highest snapshot below, and the result kept for the next reset. A run whose
    checks fail is not kept."""
    from mailkit.lab.lab import Lab

    lab = Lab()
    _check_student(lab, name, to_part)
    return _finish(lab, name, to_part, _boot_student(lab, name, to_part, progress), output, progress)


def reset_students(
    names: Sequence[str], to_part: int, output: Path, progress: Progress = lambda _: None
) -> dict[str, StudentReset | MailkitError]:
    """:func:`reset_student` for several students: their hosts boot side by side (at most :data:`BOOTS_AT_ONCE` at
    a time), the receiver forgets what it cached of their domains once for all, then the guide runs, one student
    after the other, for those whose own snapshot did not bring them to part ``to_part``; each student's notebooks
    go to ``output``/NAME. Every name is checked before any host is touched; after that one student's failure is
    theirs (their entry is the error) and the others go on.

    >>> reset_students(["student01", "student02"], 2, Path("out/workshop"))  # doctest: +SKIP
    {'student01': StudentReset(run=None, booted_from='trixie-student01-part2-...', kept=None), ...}
    """
    from mailkit.lab.lab import Lab

    if len(set(names)) != len(names) or not names:
        raise UsageError(f"name each student once: {' '.join(names) or 'none named'}")
    lab = Lab()
    for name in names:
        _check_student(lab, name, to_part)

    def said_by(name: str) -> Progress:
        return lambda line: progress(f"{name}: {line}")

    def boot(name: str) -> Snapshot | None:
        return _boot_student(Lab(), name, to_part, said_by(name), forget_receiver=False)

    with ThreadPoolExecutor(max_workers=min(len(names), BOOTS_AT_ONCE)) as pool:
        booting = {name: pool.submit(boot, name) for name in names}
    # The receiver forgets what it cached of the students' domains once for all of them (it restarts its verifiers:
    # OpenDMARC takes 5 s to stop), before any student's guide sends it mail.
    if any(not future.exception() for future in booting.values()):
        lab.forget_receiver_cache()
    done: dict[str, StudentReset | MailkitError] = {}
    for name, future in booting.items():
        try:
            start = future.result()
            done[name] = _finish(lab, name, to_part, start, output / name, said_by(name))
        except MailkitError as exc:
            done[name] = exc
    return done


def _check_student(lab: Lab, name: str, to_part: int) -> None:
    """Refused before anything changes: a part the workshop does not have, a student the lab does not have."""
    number = student_number(name)
    if not 0 <= to_part <= max(WORKSHOP_PARTS):
        raise UsageError(f"--to-part must be from 0 to {max(WORKSHOP_PARTS)}, not {to_part}")
    if name not in lab.hosts():
        raise UsageError(f"the lab has no {name}: 'mailkit workshop up --students {number}' first")


def _boot_student(
    lab: Lab, name: str, to_part: int, progress: Progress, *, forget_receiver: bool = True
) -> Snapshot | None:
    """The student's host booted afresh: from their highest snapshot up to part ``to_part`` (returned), else bare;
    ``forget_receiver`` False: the receiver's caches are the caller's to clear (:meth:`Lab.forget_receiver_cache`)."""
    if to_part == 0:
        lab.reset(progress, name=name, forget_receiver=forget_receiver)
        return None
    return lab.boot_part(name, to_part, progress, forget_receiver=forget_receiver)


def _finish(
    lab: Lab, name: str, to_part: int, start: Snapshot | None, output: Path, progress: Progress
) -> StudentReset:
    """The rest of the way to part ``to_part`` from where the boot left the host (``start``): the guide's parts as
    the student runs them, and the result kept as their snapshot."""
    booted_from = None if start is None else start.name
    if to_part == 0 or (start is not None and start.part == to_part):
        return StudentReset(None, booted_from)
    parts = list(range(1 if start is None else start.part + 1, to_part + 1))
    number = student_number(name)
    with tempfile.TemporaryDirectory(prefix="mailkit-workshop-") as tmp:
        # Run as the student would: their notebooks, their folder's keys and settings, nothing of the lab's.
        settings = write_student_kit(lab, number, Path(tmp))
        write_student_notebooks(number, Path(tmp), parts)
        run = run_guide(parts, output, target=name, progress=progress, notebook_dir=Path(tmp), environ=settings)
    if not run.ok:
        return StudentReset(run, booted_from)
    kept, _ = lab.keep_snapshot(to_part, progress, name=name)
    return StudentReset(run, booted_from, kept.name)
