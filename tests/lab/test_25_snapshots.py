"""Part snapshots (issue 22): a mail host booted from a snapshot passes exactly the checks a host the guide built
passes, `mailkit check` reading it from the outside host; the lab's DNS comes back as it was when the snapshot was
kept; and a snapshot whose inputs changed is never used. On every release the lab runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mailkit.guide.runner import run_guide
from mailkit.lab import snapshots
from mailkit.lab.lab import Lab
from mailkit.status.run import check_server

pytestmark = pytest.mark.lab


def _seen(lab: Lab) -> list[tuple[str, str, bool]]:
    """What `mailkit check` sees of the mail host, from the outside host: every row's group, name and verdict."""
    return [(r.group, r.name, r.ok) for r in check_server("lab:mail", vantage="lab:outside").rows]


def _dkim_record(lab: Lab) -> str:
    """example.org's DKIM keys (part 3 rotates them: whichever selectors it left) as the lab's name server has them."""
    zone = lab.zones()["db.example.org"]
    return "\n".join(sorted(line for line in zone.splitlines() if "_domainkey" in line))


def test_a_host_from_a_snapshot_passes_the_same_checks_as_the_host_the_guide_built(lab: Lab, tmp_path: Path) -> None:
    lab.reset(to_part=2)  # the snapshot part 4 is built on (made now if it is not there)
    built_run = run_guide([3, 4], tmp_path / "parts34", target="lab:mail")
    assert built_run.ok, built_run.error or [c for c in built_run.checks if not c.ok]
    built = _seen(lab)
    assert len(built) >= 40 and {"drift", "dkim", "auth"} <= {group for group, _, _ in built}, built
    published = _dkim_record(lab)
    assert '"v=DKIM1;' in published, "part 3 published its DKIM key"
    kept, new = lab.keep_snapshot(4)  # new, or the one the same inputs made before: either is what reset boots

    assert lab.reset() == "a fresh host"
    assert _dkim_record(lab) == "", "a fresh host comes with the zones as the lab was made"
    assert lab.reset(to_part=4) == f"part 4 from snapshot {kept.name}"
    restored = _seen(lab)
    assert restored == built, [(a, b) for a, b in zip(built, restored, strict=False) if a != b]
    if lab.status()["release"] == "trixie":  # mailkit check is green on the release it is tested on (test_80)
        assert [row for row in restored if not row[2]] == []
    if new:  # the key the guide made is the one the zone kept; an older snapshot has its own, as published
        assert _dkim_record(lab) == published


def test_a_snapshot_is_found_only_with_the_inputs_that_made_it(lab: Lab) -> None:
    lab.reset(to_part=2)
    release = lab.status()["release"]
    digest = lab.snapshot_digest(2)
    found = snapshots.find(lab.snapshot_store, release, 2, digest)
    assert found is not None and found.part == 2
    assert snapshots.find(lab.snapshot_store, release, 2, "0" * 64) is None, "other inputs, another name"
    assert lab.snapshot_digest(3) != digest, "part 3's notebook is an input of part 3's snapshot"
    report = lab.snapshot_report()
    assert any(line.startswith(found.name) and line.endswith("in use") for line in report), report
