"""Part snapshots: a lab mail host's writable layer kept after the guide ran parts 1 to K, with the lab's DNS zones
as they were then, so that "a server at the end of part K" is a reboot instead of minutes of the guide.

A snapshot belongs to one host: the lab's ``mail``, or a workshop student's (``student07``), whose layer holds
what that student's run made (their names, keys and passwords) and whose DNS is their domain's records only.

A snapshot is named by everything that produced it (:func:`inputs_digest`): the release and its base image,
mailkit's own files (resources, checks) and the templates it renders, the code of the notebooks of parts 1 to K,
and the lab's identity (its CA, the mail host's SSH key, the secret the lab's passwords come from). Change any of
them and the name changes: a snapshot whose inputs changed is never found, so never used. Facts only here; the lab
(:meth:`mailkit.lab.lab.Lab.reset`) keeps and boots them.

>>> name_of("trixie", 4, "0123456789abcdef0123")
'trixie-part4-0123456789abcdef'
>>> name_of("trixie", 2, "0123456789abcdef0123", host="student07")
'trixie-student07-part2-0123456789abcdef'
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import mailkit
from mailkit.core.errors import LabError
from mailkit.core.local import run_local
from mailkit.core.templates import TEMPLATE_DIR

#: The parts a snapshot can be taken at: the server's own parts (5, the upgrade, changes the release).
PARTS = (1, 2, 3, 4)
META = "snapshot.json"
#: The lab's own mail host: its snapshots keep every lab zone and are named without the host.
MAIL = "mail"
#: What a student's snapshot keeps of the DNS, in place of the zones: their domain's records as zone file lines.
STUDENT_RECORDS = "records"


def name_of(release: str, part: int, digest: str, host: str = MAIL) -> str:
    if not re.fullmatch(r"mail|student\d{2}", host):
        raise LabError(f"no snapshots of {host!r}: the lab's mail host or a student's")
    return f"{release}-{'' if host == MAIL else host + '-'}part{part}-{digest[:16]}"


def _notebook_code(path: Path) -> bytes:
    """The code cells of a notebook, without outputs: regenerating stored outputs changes no server."""
    cells = json.loads(path.read_text())["cells"]
    return "\n\0".join("".join(c["source"]) for c in cells if c["cell_type"] == "code").encode()


def _tree_files(top: Path) -> list[Path]:
    return [p for p in sorted(top.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]


_TREES: dict[tuple[str, tuple[tuple[str, int, int], ...]], bytes] = {}


def tree_digest(top: Path) -> bytes:
    """A digest of every file under ``top`` (names and contents), read again only when a file's size, time or
    name changed: a reset asks for it once per part it looks at.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = (Path(d) / "a.j2").write_text("one")
    ...     first = tree_digest(Path(d))
    ...     _ = (Path(d) / "a.j2").write_text("two!")
    ...     first == tree_digest(Path(d))
    False
    """
    files = _tree_files(top)
    key = (str(top), tuple((str(p.relative_to(top)), *_stamp(p)) for p in files))
    if key not in _TREES:
        digest = hashlib.sha256()
        for path in files:
            data = path.read_bytes()
            digest.update(f"{path.relative_to(top)}\0{len(data)}\0".encode())
            digest.update(data)
        _TREES[key] = digest.digest()
    return _TREES[key]


def _stamp(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_size, info.st_mtime_ns


def inputs_digest(
    release: str,
    base_build: str,
    notebooks: Sequence[Path],
    identity: Mapping[str, bytes],
    package: Path | None = None,
    templates: Path | None = None,
) -> str:
    """One hex digest of everything a snapshot of the guide's parts depends on.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     nb = Path(d) / "01.ipynb"
    ...     _ = nb.write_text('{"cells": [{"cell_type": "code", "source": ["x = 1"], "outputs": []}]}')
    ...     args = ("trixie", "b1", [nb], {"ca": b"pem"}, Path(d) / "none", Path(d) / "none")
    ...     one = inputs_digest(*args)
    ...     _ = nb.write_text('{"cells": [{"cell_type": "code", "source": ["x = 1"], "outputs": ["new"]}]}')
    ...     same = inputs_digest(*args)
    ...     _ = nb.write_text('{"cells": [{"cell_type": "code", "source": ["x = 2"], "outputs": []}]}')
    ...     other = inputs_digest(*args)
    >>> one == same, one == other
    (True, False)
    """
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    add("release", release.encode())
    add("base", base_build.encode())
    add("mailkit", tree_digest(package or Path(mailkit.__file__).parent))
    add("templates", tree_digest(templates or TEMPLATE_DIR))
    for path in notebooks:
        add(f"notebook/{path.name}", _notebook_code(path))
    for key in sorted(identity):
        add(f"identity/{key}", hashlib.sha256(identity[key]).digest())  # a digest of a secret, never the secret
    return digest.hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """One kept snapshot: ``layer`` (an overlay upper, used as a lower), the DNS zones, its parent's name and the
    host it was kept from (the zones of a student's snapshot: their domain's records alone)."""

    path: Path
    release: str
    part: int
    parent: str | None
    host: str = MAIL

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def layer(self) -> Path:
        return self.path / "layer"

    @property
    def zones(self) -> dict[str, str]:
        """Zone file name -> text, as the lab's name server had them."""
        return {p.name: p.read_text() for p in sorted((self.path / "zones").iterdir())}


def _read(path: Path) -> Snapshot | None:
    try:
        meta = json.loads((path / META).read_text())
        return Snapshot(path, str(meta["release"]), int(meta["part"]), meta["parent"], str(meta.get("host", MAIL)))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # half written (a crash while keeping it): not a snapshot


def find(store: Path, release: str, part: int, digest: str, host: str = MAIL) -> Snapshot | None:
    """``host``'s snapshot of ``part`` with these inputs, when it and every snapshot under it are complete."""
    found = _read(store / name_of(release, part, digest, host))
    ok = found is not None and found.host == host and _chain_complete(store, found)
    return found if ok else None


def _chain_complete(store: Path, snapshot: Snapshot) -> bool:
    seen = 0
    current: Snapshot | None = snapshot
    while current is not None and current.parent is not None:
        current = _read(store / current.parent)
        seen += 1
        if current is None or seen > len(PARTS):
            return False
    return True


def lowers(store: Path, snapshot: Snapshot) -> list[Path]:
    """The layers to mount under a fresh upper, topmost first, down to (not including) the base image."""
    layers = [snapshot.layer]
    current = snapshot
    while current.parent is not None:
        parent = _read(store / current.parent)
        if parent is None:
            raise LabError(f"snapshot {snapshot.name} is built on {current.parent}, which is gone")
        layers.append(parent.layer)
        current = parent
    return layers


def keep(
    store: Path,
    name: str,
    upper: Path,
    zones: Mapping[str, str],
    release: str,
    part: int,
    parent: str | None,
    host: str = MAIL,
) -> Snapshot:
    """Copy a stopped host's upper layer and the zones into the store, whole or not at all.

    Device nodes (overlay's whiteouts) and extended attributes (overlay's metadata-only copies) are kept:
    ``cp -a`` as root keeps both.
    """
    for filename in zones:
        if "/" in filename or filename.startswith(".") or not filename:
            raise LabError(f"refusing a zone file name {filename!r}")
    final = store / name
    tmp = store / f"{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "zones").mkdir(parents=True)
    run_local(["cp", "-a", "--reflink=auto", "--", f"{upper}/.", str(tmp / "layer")])
    for filename, text in zones.items():
        (tmp / "zones" / filename).write_text(text)
    meta = {"release": release, "part": part, "parent": parent, "host": host}
    (tmp / META).write_text(json.dumps(meta, indent=1) + "\n")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    found = _read(final)
    assert found is not None
    return found


def with_parents(store: Path, names: set[str]) -> set[str]:
    """``names`` and every snapshot they are built on (a snapshot in use keeps the layers under it)."""
    needed = set(names)
    for name in names:
        current = _read(store / name)
        while current is not None and current.parent is not None and current.parent not in needed:
            needed.add(current.parent)
            current = _read(store / current.parent)
    return needed


def replaced(store: Path, release: str, current: set[str], host: str = MAIL) -> list[Path]:
    """``host``'s snapshots of ``release`` no search can find any more (their inputs changed) and the half-written
    ones; never one in ``current`` (what this lab's inputs name, and what a running host boots from) or under them,
    never another host's.

    >>> replaced(Path("/nonexistent"), "trixie", set())
    []
    """
    if not store.is_dir():
        return []
    needed = with_parents(store, current)
    gone: list[Path] = []
    for path in sorted(store.iterdir()):
        if not path.is_dir() or path.name in needed:
            continue
        found = _read(path)
        if found is None or (found.release == release and found.host == host):
            gone.append(path)
    return gone


def listing(store: Path) -> list[Snapshot]:
    """Every complete snapshot in the store, by name."""
    if not store.is_dir():
        return []
    return [s for p in sorted(store.iterdir()) if (s := _read(p)) is not None]
