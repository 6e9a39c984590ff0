"""Secrets made on the host never follow a link (security review, finding 3): a link planted where a key
belongs, or swapped in between planning and applying, is refused and the file it points at is untouched.

Run against a local shell over a temporary directory, as the engine's other logic tests are.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mailkit.core import engine
from mailkit.core.errors import UsageError
from mailkit.core.resources import Directory, GeneratedKey
from mailkit.core.transaction import transaction_script
from mailkit.guide.part1 import Part1
from mailkit.guide.part3 import DKIM_DIR, OLD_DKIM_DIR, RSPAMD_USER, Part3
from tests.unit.test_engine_logic import GROUP, USER, LocalShell


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "shadow"
    victim.write_text("root:$y$secret:20000::::::\n")
    victim.chmod(0o640)
    return victim


def _run(script: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["bash", "-c", script], capture_output=True, check=False, timeout=60)


def test_a_link_planted_in_place_of_a_key_is_refused_not_followed(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    (tmp_path / "example.org.key").symlink_to(victim)
    key = GeneratedKey(str(tmp_path / "example.org.key"), owner=USER, group=GROUP, mode=0o600)
    with pytest.raises(UsageError, match="is a symbolic link, not a regular file"):
        engine.apply(LocalShell(), [key], state_dir=str(tmp_path / "state"))
    assert oct(victim.stat().st_mode & 0o777) == "0o640" and "secret" in victim.read_text()


def test_a_link_swapped_in_after_planning_is_refused_by_the_transaction(tmp_path: Path) -> None:
    """The plan saw a regular file with the wrong mode; by apply time someone made it a link."""
    victim = _victim(tmp_path)
    path = tmp_path / "example.org.key"
    key = GeneratedKey(str(path), owner=USER, group=GROUP, mode=0o600)
    change = key.compare([("file", 0o644, USER, GROUP)])
    assert change is not None
    path.symlink_to(victim)
    state = tmp_path / "state"
    done = _run(transaction_script([change], str(state / "backups" / "1"), str(state)))
    assert done.returncode != 0 and b"@@ commit-failed" in done.stdout
    assert oct(victim.stat().st_mode & 0o777) == "0o640", "chmod did not go through the link"
    assert path.is_symlink(), "the link was put back as it was (nothing else changed)"


def _rsa_key(path: Path) -> None:
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-out", str(path)], check=True, capture_output=True)
    path.chmod(0o600)


def test_a_key_of_the_old_layout_is_copied_so_its_dns_record_stays_right(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    _rsa_key(old / "a.key")
    key = GeneratedKey(str(new / "a.key"), owner=USER, group=GROUP, mode=0o640, adopt=str(old / "a.key"))
    result = engine.apply(LocalShell(), [key], state_dir=str(tmp_path / "state"))
    assert [c.summary for c in result.changes] == [
        f"copy the key {old}/a.key to {new}/a.key (its DNS record stays right)"
    ]
    assert (new / "a.key").read_bytes() == (old / "a.key").read_bytes()
    assert oct((new / "a.key").stat().st_mode & 0o777) == "0o640"


def test_a_link_in_the_old_layout_is_never_read(tmp_path: Path) -> None:
    """A link there (to root's TLS key, say) is not copied: a new key is made instead; one swapped in after
    planning is refused by ``dd iflag=nofollow`` and nothing is made."""
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    _rsa_key(tmp_path / "tls.key")
    (old / "a.key").symlink_to(tmp_path / "tls.key")
    key = GeneratedKey(str(new / "a.key"), owner=USER, group=GROUP, mode=0o640, adopt=str(old / "a.key"))
    result = engine.apply(LocalShell(), [key], state_dir=str(tmp_path / "state"))
    assert [c.summary for c in result.changes] == [f"generate a 2048-bit RSA key {new}/a.key"]
    assert (new / "a.key").read_bytes() != (tmp_path / "tls.key").read_bytes()

    (new / "a.key").unlink()
    change = key.compare([None, ("file", 0o600, USER, GROUP)])  # planned while it was a regular file
    assert change is not None
    state = tmp_path / "state2"
    done = _run(transaction_script([change], str(state / "backups" / "1"), str(state)))
    assert done.returncode != 0 and b"@@ unchanged" in done.stdout
    assert not (new / "a.key").exists() and sorted(p.name for p in new.iterdir()) == []


def test_dkim_keys_are_roots_and_readable_by_rspamd_only() -> None:
    part3 = Part3(Part1("example.org", ["b.example.org"]))
    folder, *keys = part3.dkim_keys()
    assert isinstance(folder, Directory) and (folder.path, folder.owner, folder.group, folder.mode) == (
        DKIM_DIR,
        "root",
        RSPAMD_USER,
        0o750,
    )
    assert DKIM_DIR.startswith("/etc/"), "no folder on the way is writable by rspamd's account"
    assert [(k.owner, k.group, k.mode) for k in keys if isinstance(k, GeneratedKey)] == [
        ("root", RSPAMD_USER, 0o640)
    ] * 2
    assert [k.adopt for k in keys if isinstance(k, GeneratedKey)] == [
        f"{OLD_DKIM_DIR}/example.org.s202611.key",
        f"{OLD_DKIM_DIR}/b.example.org.s202611.key",
    ]
