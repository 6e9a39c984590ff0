"""Part snapshots' bookkeeping (mailkit.lab.snapshots): names, chains, what a new snapshot replaces."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from mailkit.core.errors import LabError
from mailkit.lab import snapshots


def _fake(store: Path, name: str, release: str, part: int, parent: str | None, host: str | None = None) -> Path:
    """A kept snapshot's bookkeeping, without a layer worth the name (no host: as kept before snapshots had one)."""
    path = store / name
    (path / "layer").mkdir(parents=True)
    (path / "zones").mkdir()
    (path / "zones" / "db.example.org").write_text("; zone\n")
    meta = {"release": release, "part": part, "parent": parent} | ({} if host is None else {"host": host})
    (path / snapshots.META).write_text(json.dumps(meta))
    return path


def test_a_snapshot_is_found_by_its_inputs_and_only_with_its_whole_chain(tmp_path: Path) -> None:
    two = snapshots.name_of("trixie", 2, "a" * 64)
    four = snapshots.name_of("trixie", 4, "b" * 64)
    _fake(tmp_path, two, "trixie", 2, None)
    _fake(tmp_path, four, "trixie", 4, two)
    found = snapshots.find(tmp_path, "trixie", 4, "b" * 64)
    assert found is not None and found.parent == two
    assert snapshots.lowers(tmp_path, found) == [tmp_path / four / "layer", tmp_path / two / "layer"]
    assert found.zones == {"db.example.org": "; zone\n"}
    assert snapshots.find(tmp_path, "trixie", 4, "c" * 64) is None
    assert snapshots.find(tmp_path, "bookworm", 4, "b" * 64) is None

    (tmp_path / two / snapshots.META).unlink()  # the layer under it half gone: part 4 cannot be booted
    assert snapshots.find(tmp_path, "trixie", 4, "b" * 64) is None
    with pytest.raises(LabError, match="gone"):
        snapshots.lowers(tmp_path, found)


def test_a_students_snapshot_is_theirs_alone_and_a_new_one_replaces_none_of_anothers(tmp_path: Path) -> None:
    """Workshop resets (issue 22): each student's host keeps snapshots of its own, beside the mail host's."""
    mail = _fake(tmp_path, snapshots.name_of("trixie", 2, "a" * 64), "trixie", 2, None)
    one = snapshots.name_of("trixie", 2, "a" * 64, host="student01")
    assert one == "trixie-student01-part2-" + "a" * 16
    _fake(tmp_path, one, "trixie", 2, None, host="student01")
    found = snapshots.find(tmp_path, "trixie", 2, "a" * 64, host="student01")
    assert found is not None and found.host == "student01"
    assert snapshots.find(tmp_path, "trixie", 2, "a" * 64, host="student02") is None, "another student's is not his"
    assert snapshots.find(tmp_path, "trixie", 2, "a" * 64) == snapshots.Snapshot(mail, "trixie", 2, None, "mail")
    # A snapshot whose meta names another host than its name is not found (renamed by hand, or half copied).
    _fake(tmp_path, snapshots.name_of("trixie", 4, "b" * 64, host="student02"), "trixie", 4, None, host="student01")
    assert snapshots.find(tmp_path, "trixie", 4, "b" * 64, host="student02") is None

    old = _fake(tmp_path, "trixie-student01-part4-old", "trixie", 4, None, host="student01")
    assert snapshots.replaced(tmp_path, "trixie", {one}, host="student01") == [
        old, tmp_path / snapshots.name_of("trixie", 4, "b" * 64, host="student02")]  # fmt: skip
    assert snapshots.replaced(tmp_path, "trixie", {mail.name}) == [], "the mail host's keeping leaves students' be"
    for bad in ("../mail", "student1", "outside", "student01/x"):
        with pytest.raises(LabError, match="no snapshots of"):
            snapshots.name_of("trixie", 2, "a" * 64, host=bad)


def test_a_half_written_snapshot_is_not_one(tmp_path: Path) -> None:
    name = snapshots.name_of("trixie", 2, "a" * 64)
    (tmp_path / name / "layer").mkdir(parents=True)  # a crash before snapshot.json was written
    assert snapshots.find(tmp_path, "trixie", 2, "a" * 64) is None
    assert snapshots.listing(tmp_path) == []


def test_keeping_replaces_what_no_search_can_find_but_never_what_is_in_use(tmp_path: Path) -> None:
    old2 = _fake(tmp_path, "trixie-part2-old", "trixie", 2, None)
    old4 = _fake(tmp_path, "trixie-part4-old", "trixie", 4, "trixie-part2-old")
    in_use = _fake(tmp_path, "trixie-part3-running", "trixie", 3, None)
    other_release = _fake(tmp_path, "bookworm-part4-x", "bookworm", 4, None)
    half = tmp_path / "trixie-part1-x.tmp"
    half.mkdir()
    new = _fake(tmp_path, "trixie-part2-new", "trixie", 2, None)
    gone = snapshots.replaced(tmp_path, "trixie", {new.name, in_use.name})
    assert gone == sorted([old2, old4, half])
    assert other_release not in gone and in_use not in gone

    # A running host booted from part 4 keeps the part 2 under it, though part 2's inputs changed.
    assert snapshots.replaced(tmp_path, "trixie", {new.name, old4.name}) == sorted([half, in_use])


@pytest.mark.skipif(os.geteuid() != 0, reason="device nodes and trusted.* attributes need root, as the lab does")
def test_keep_copies_the_layer_whole_with_its_whiteouts_and_refuses_odd_zone_names(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "etc/postfix").mkdir(parents=True)
    (upper / "etc/postfix/main.cf").write_text("myhostname = mail.example.org\n")
    (upper / "etc/motd").symlink_to("/dev/null")
    whiteout = upper / "etc/removed.conf"  # how overlayfs marks a file the host deleted: a 0/0 device
    os.mknod(whiteout, stat.S_IFCHR | 0o000, os.makedev(0, 0))
    os.setxattr(upper / "etc/postfix", "trusted.overlay.opaque", b"y")
    store = tmp_path / "store"
    store.mkdir()
    kept = snapshots.keep(store, "trixie-part1-x", upper, {"db.example.org": "; z\n"}, "trixie", 1, None)
    assert kept.host == "mail"
    assert (kept.layer / "etc/postfix/main.cf").read_text() == "myhostname = mail.example.org\n"
    assert (kept.layer / "etc/motd").is_symlink(), "links are copied as links, never followed"
    kept_whiteout = (kept.layer / "etc/removed.conf").lstat()
    assert stat.S_ISCHR(kept_whiteout.st_mode) and kept_whiteout.st_rdev == os.makedev(0, 0)
    assert os.getxattr(kept.layer / "etc/postfix", "trusted.overlay.opaque") == b"y"
    assert snapshots.listing(store) == [kept]
    with pytest.raises(LabError, match="zone file name"):
        snapshots.keep(store, "trixie-part1-y", upper, {"../../etc/passwd": "x"}, "trixie", 1, None)
    assert [s.name for s in snapshots.listing(store)] == ["trixie-part1-x"], "nothing half kept"


def test_every_input_names_the_snapshot_the_templates_too(tmp_path: Path) -> None:
    """A template the guide renders changes the server as much as the code that renders it: a snapshot made with
    the old one is never found again."""
    package, templates = tmp_path / "mailkit", tmp_path / "templates"
    (package / "guide").mkdir(parents=True)
    (templates / "fail2ban").mkdir(parents=True)
    (package / "guide" / "part4.py").write_text("x = 1\n")
    (templates / "fail2ban" / "mail.conf.j2").write_text("maxretry = 5\n")
    notebook = tmp_path / "04.ipynb"
    notebook.write_text(json.dumps({"cells": [{"cell_type": "code", "source": ["x"], "outputs": []}]}))

    def digest(release: str = "trixie", identity: bytes = b"ca") -> str:
        return snapshots.inputs_digest(release, "build1", [notebook], {"ca": identity}, package, templates)

    seen = {digest()}
    (templates / "fail2ban" / "mail.conf.j2").write_text("maxretry = 3\n")
    seen.add(digest())
    (package / "guide" / "part4.py").write_text("x = 2\n")
    seen.add(digest())
    seen |= {digest(release="bookworm"), digest(identity=b"another ca")}
    assert len(seen) == 5
    assert digest() == digest(), "the same inputs, the same name"
