"""Workshop mode: one mail host per student in the lab, their notebooks with their parameters filled in, and a
reset to the end of any part.

>>> student_parameters(2)["DOMAIN"], student_parameters(2)["TARGET"]
('student02.example.org', 'lab:student02')
"""

from __future__ import annotations

import shlex
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mailkit.errors import UsageError
from mailkit.guide.runner import GuideRun, inject_parameters, notebooks_for, run_guide
from mailkit.lab.layout import host_spec, student_spec
from mailkit.local import write_private
from mailkit.progress import Progress

#: The guide's parts a student works through (05, the upgrade, needs a bookworm server of its own).
WORKSHOP_PARTS = (1, 2, 3, 4)


def student_parameters(number: int) -> dict[str, Any]:
    """The notebooks' parameters for student ``number``: their host, their two domains, their mailboxes."""
    spec = student_spec(number)
    domain = spec.domain
    return {
        "TARGET": f"lab:{spec.name}",
        "DOMAIN": domain,
        "HOSTNAME": spec.fqdn,
        "OTHER_DOMAINS": [f"b.{domain}"],
        "MAILBOXES": [f"alice@{domain}", f"bob@{domain}", f"carol@b.{domain}"],
        "ALIASES": {f"info@{domain}": [f"bob@{domain}"]},
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
    """Every student's folder: ``studentNN/`` with their notebooks and ``studentNN/ssh/`` with their login (key,
    ``known_hosts`` with their host's key only, ``config``): hand it to the student's own account, which needs
    nothing of root's to log in."""
    from mailkit.lab.lab import Lab

    lab = Lab()
    written = {}
    for number in range(1, students + 1):
        name = student_spec(number).name
        folder = directory / name
        written[name] = write_student_notebooks(number, folder)
        key = lab.student_key(name)
        if key.exists():
            ssh = folder / "ssh"
            ssh.mkdir(mode=0o700, exist_ok=True)
            shutil.copy(key, ssh / "id_ed25519")
            (ssh / "id_ed25519").chmod(0o600)
            shutil.copy(key.parent / "known_hosts", ssh / "known_hosts")
            config = (key.parent / "ssh_config").read_text()
            for made, copied in ((key, ssh / "id_ed25519"), (key.parent / "known_hosts", ssh / "known_hosts")):
                config = config.replace(str(made), str(copied.resolve()))
            (ssh / "config").write_text(config)
        if lab.student_dns_key(name).exists():
            write_private(folder / "dns.key", lab.student_dns_key(name).read_bytes())
            (folder / "lab-ca.pem").write_bytes(lab.ca.ensure())
            (folder / "env").write_text(student_environment(folder))
    return written


def student_environment(folder: Path) -> str:
    """A student's shell settings for doing a step by hand with their own keys: their SSH login, the lab's DNS
    server and CA, and the registrar command that publishes their records with their own DNS key (it may change
    their domain's names only).

    >>> print(student_environment(Path("/class/student01")).splitlines()[0])
    export MAILKIT_SSH_CONFIG=/class/student01/ssh/config
    """
    from mailkit.lab.dns import NAMESERVER

    registrar = f"{sys.executable} -m mailkit.cli registrar rfc2136 --server {NAMESERVER.address} "
    settings = {
        "MAILKIT_SSH_CONFIG": str(folder / "ssh" / "config"),
        "MAILKIT_NAMESERVER": NAMESERVER.address,
        "MAILKIT_CA_FILE": str(folder / "lab-ca.pem"),
        "MAILKIT_REGISTRAR": registrar + f"--key-file {shlex.quote(str(folder / 'dns.key'))}",
    }
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in settings.items())


def students_in_lab() -> int:
    from mailkit.lab.lab import Lab

    lab = Lab()
    lab.require_up()
    return sum(1 for name in lab.hosts() if name.startswith("student"))


def reset_student(name: str, to_part: int, output: Path, progress: Progress = lambda _: None) -> GuideRun | None:
    """A fresh host for the student, then the guide's parts 1..``to_part`` applied with their parameters."""
    from mailkit.lab.lab import Lab

    number = student_number(name)
    if not 0 <= to_part <= max(WORKSHOP_PARTS):
        raise UsageError(f"--to-part must be from 0 to {max(WORKSHOP_PARTS)}, not {to_part}")
    lab = Lab()
    if name not in lab.hosts():
        raise UsageError(f"the lab has no {name}: 'mailkit workshop up --students {number}' first")
    lab.reset(progress, name=name)
    if to_part == 0:
        return None
    parts = list(range(1, to_part + 1))
    with tempfile.TemporaryDirectory(prefix="mailkit-workshop-") as tmp:
        write_student_notebooks(number, Path(tmp), parts)
        return run_guide(parts, output, target=f"lab:{name}", progress=progress, notebook_dir=Path(tmp))
