"""Base root filesystems per Debian release, built once with debootstrap and kept in a cache.

A *base* is a minimal server image. A *layer* is what one role adds on top (the DNS server, the
outside host's clients), built as the upper directory of an overlay over the base, so each host's
root is ``host upper : layer : base``. Every build goes to a temporary directory and is renamed into
place only when complete, and is rebuilt when its recipe changes: a cache is an optimisation, never
a requirement.

>>> recipe_of("trixie", ("bind9",), "base-id")["packages"]
['bind9']
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mailkit.core.errors import LabError
from mailkit.core.progress import Progress
from mailkit.lab.layout import BASE_PACKAGES, DEBIAN_MIRROR, LAYER_PACKAGES, cache_dir

#: Bump when the way bases are built changes, so old caches are rebuilt.
RECIPE_VERSION = 2

#: Releases whose Release files carry a Valid-Until date (stable releases do not).
ROLLING = ("sid",)
#: A lab reaches the archive through a cache, and archive copies lag: an expired sid Release file must not
#: stop the early-warning run. Lab images only; a real server keeps apt's replay protection.
ROLLING_APT_CONF = """// Written by mailkit's lab (sid only): accept a Release file past its Valid-Until date.
Acquire::Check-Valid-Until "false";
"""


def recipe_of(release: str, packages: tuple[str, ...], parent: str | None) -> dict[str, object]:
    """What a build depends on; a cached build is reused only when this is identical."""
    return {
        "version": RECIPE_VERSION,
        "release": release,
        "mirror": DEBIAN_MIRROR,
        "packages": list(packages),
        "parent": parent,
    }


def _stamp_path(path: Path) -> Path:
    """The stamp lives beside the tree (not inside it, where every host would see it)."""
    return path.with_name(f"{path.name}.recipe.json")


def _read_stamp(path: Path) -> dict[str, object] | None:
    if not path.is_dir():
        return None
    try:
        return json.loads(_stamp_path(path).read_text())
    except (OSError, ValueError):
        return None


def _is_current(path: Path, recipe: dict[str, object]) -> bool:
    stamp = _read_stamp(path)
    return stamp is not None and stamp.get("recipe") == recipe


def _finish(tmp: Path, final: Path, recipe: dict[str, object]) -> None:
    """Move a complete build into place; the stamp is written last, so it marks completeness."""
    _stamp_path(final).unlink(missing_ok=True)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    _stamp_path(final).write_text(json.dumps({"recipe": recipe, "build": uuid.uuid4().hex}))


@contextmanager
def _cache_lock(release: str) -> Iterator[None]:
    """One lock per release: labs of different releases build their images at the same time (``mailkit matrix``)."""
    root = cache_dir()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    root.chmod(0o700)  # base images and the apt cache: root only
    with open(root / f".{release}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _stream(argv: list[str], progress: Progress, what: str) -> None:
    """Run a long build step, passing each line it prints to ``progress``."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        line = line.rstrip()
        if line:
            tail = ([*tail, line])[-15:]
            progress(line)
    if proc.wait() != 0:
        raise LabError(f"{what} failed (exit {proc.returncode}):\n" + "\n".join(tail))


def release_dir(release: str) -> Path:
    return cache_dir() / "rootfs" / release


def build_id(path: Path) -> str:
    stamp = _read_stamp(path)
    if stamp is None:
        raise LabError(f"{path} is not a complete build")
    return str(stamp["build"])


def ensure_base(release: str, progress: Progress) -> Path:
    """Return the cached base for ``release``, building it with debootstrap if needed."""
    final = release_dir(release) / "base"
    recipe = recipe_of(release, BASE_PACKAGES, None)
    with _cache_lock(release):
        if _is_current(final, recipe):
            return final
        tmp = final.with_name("base.tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        progress(f"building the {release} base with debootstrap (once; about a minute)")
        _stream(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                release,
                str(tmp),
                DEBIAN_MIRROR,
            ],
            progress,
            f"debootstrap {release}",
        )
        _generalise(tmp)
        if release in ROLLING:
            (tmp / "etc/apt/apt.conf.d/99mailkit-lab-rolling").write_text(ROLLING_APT_CONF)
        _finish(tmp, final, recipe)
        return final


def _generalise(root: Path) -> None:
    """Strip what must differ per host, as a provider's image does: host keys, machine id, apt lists."""
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    for cached in (root / "var/cache/apt/archives").glob("*.deb"):
        cached.unlink()
    lists = root / "var/lib/apt/lists"
    for entry in lists.glob("*"):
        if entry.is_file() and entry.name != "lock":
            entry.unlink()


# Runs inside `unshare --mount`: every mount it makes disappears with it, even on failure.
_LAYER_SCRIPT = r"""
set -eu
base=$1 upper=$2 work=$3 merged=$4; shift 4
mount -t overlay overlay -o "lowerdir=$base,upperdir=$upper,workdir=$work" "$merged"
mount -t proc proc "$merged/proc"
mount --rbind /dev "$merged/dev"
cp /etc/resolv.conf "$merged/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$merged/usr/sbin/policy-rc.d"
chmod 755 "$merged/usr/sbin/policy-rc.d"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
chroot "$merged" apt-get update -q
chroot "$merged" apt-get install -y -q --no-install-recommends "$@"
chroot "$merged" apt-get clean
rm -f "$merged/usr/sbin/policy-rc.d"
rm -rf "$merged"/var/lib/apt/lists/*_* "$merged/etc/resolv.conf"
"""


def ensure_layer(release: str, role: str, progress: Progress) -> Path:
    """Return the cached layer for ``role`` (over the base of ``release``), building it if needed."""
    base = ensure_base(release, progress)
    packages = LAYER_PACKAGES[role]
    final = release_dir(release) / f"layer-{role}"
    recipe = recipe_of(release, packages, build_id(base))
    with _cache_lock(release):
        if _is_current(final, recipe):
            return final
        scratch = final.with_name(f"layer-{role}.build")
        if scratch.exists():
            shutil.rmtree(scratch)
        for sub in ("upper", "work", "merged"):
            (scratch / sub).mkdir(parents=True)
        progress(f"building the {release} '{role}' layer: {' '.join(packages)}")
        _stream(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                _LAYER_SCRIPT,
                "sh",
                str(base),
                str(scratch / "upper"),
                str(scratch / "work"),
                str(scratch / "merged"),
                *packages,
            ],
            progress,
            f"building the {role} layer",
        )
        upper = scratch / "upper"
        _finish(upper, final, recipe)
        shutil.rmtree(scratch)
        return final
