"""Part snapshots (issue 22): a mail host booted from a snapshot passes exactly the checks a host the guide built
passes, `mailkit check` reading it from the outside host (part 2 here, part 4 in test_30 with the DNS zones); and a
snapshot whose inputs changed is never used. On every release the lab runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mailkit.guide.runner import run_guide
from mailkit.lab import snapshots
from mailkit.lab.lab import Lab
from mailkit.status.run import check_server

pytestmark = pytest.mark.lab


def _seen() -> list[tuple[str, str, bool]]:
    """What `mailkit check` sees of the mail host, from the outside host: every row's group, name and verdict."""
    return [(r.group, r.name, r.ok) for r in check_server("lab:mail", vantage="lab:outside").rows]


def test_a_host_from_a_snapshot_passes_the_same_checks_as_the_host_the_guide_built(lab: Lab, tmp_path: Path) -> None:
    """At the end of part 2 (part 4's twin is in test_30, on the host the notebooks build)."""
    assert lab.reset() == "a fresh host"
    built_run = run_guide([1, 2], tmp_path / "parts12", target="lab:mail")
    assert built_run.ok, built_run.error or [c for c in built_run.checks if not c.ok]
    built = _seen()
    assert len(built) >= 30 and {"drift", "auth", "tls"} <= {group for group, _, _ in built}, built
    kept, _ = lab.keep_snapshot(2)
    assert lab.reset(to_part=2) == f"part 2 from snapshot {kept.name}"
    restored = _seen()
    assert restored == built, [(a, b) for a, b in zip(built, restored, strict=False) if a != b]


def test_a_snapshot_is_found_only_with_the_inputs_that_made_it(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    lab.reset(to_part=2)
    release = lab.status()["release"]
    digest = lab.snapshot_digest(2)
    found = snapshots.find(lab.snapshot_store, release, 2, digest)
    assert found is not None and found.part == 2
    assert snapshots.find(lab.snapshot_store, release, 2, "0" * 64) is None, "other inputs, another name"
    assert lab.snapshot_digest(3) != digest, "part 3's notebook is an input of part 3's snapshot"
    # The project's CI (stop 39): a snapshot from a lab signed with other keys, so its server's resolver validated
    # nothing. The lab's root key is an input: such a snapshot is not found.
    monkeypatch.setattr(lab, "root_anchor", lambda: ". IN DS 1 13 2 " + "00" * 32)
    assert lab.snapshot_digest(2) != digest, "a lab with another root key finds other snapshots"
    monkeypatch.undo()
    report = lab.snapshot_report()
    assert any(line.startswith(found.name) and line.endswith("in use") for line in report), report
