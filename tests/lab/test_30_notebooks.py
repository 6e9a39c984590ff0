"""nbval re-executes every notebook against a fresh mail host and compares its stored outputs; the host the
notebooks built is then kept as the part 4 snapshot (issue 22), and a host booted from that snapshot must give the
same `mailkit check` rows, row for row, with the DNS zones of that moment."""

from __future__ import annotations

import pytest

from mailkit.guide.chapters import CHAPTERS
from mailkit.lab.lab import Lab
from mailkit.lab.lab_target import lab_connection
from mailkit.lab.layout import HOSTS
from mailkit.status.run import check_server
from tests.replay import NOTEBOOKS, replay

pytestmark = pytest.mark.lab


def test_guide_notebooks_replay_with_their_stored_outputs(lab: Lab) -> None:
    lab.reset()  # the guide starts from the server as a provider hands it over
    replay([NOTEBOOKS / c.notebook for c in CHAPTERS if c.server_part])  # 05 upgrades bookworm: tests/upgrade

    # The host the guide's notebooks built, and the same host booted from its snapshot: the same checks.
    built = _seen()
    assert len(built) >= 40 and {"drift", "dkim", "auth", "firewall"} <= {group for group, _, _ in built}, built
    published = _dkim_records(lab)
    assert "v=DKIM1;" in published, "part 3 published its DKIM key"
    kept, new = lab.keep_snapshot(4)  # new, or the one the same inputs made before: either is what reset boots
    assert lab.reset() == "a fresh host"
    assert "v=DKIM1;" not in _dkim_records(lab), "a fresh host comes with the zones as the lab was made"
    assert lab.reset(to_part=4) == f"part 4 from snapshot {kept.name}"
    with lab_connection("mail") as mail:  # its own resolver (part 3 section 13) validates from this lab's root key
        assert lab.root_anchor() in mail.read("/etc/unbound/unbound.conf.d/mailkit.conf").decode()
        found = mail.run(["getent", "ahosts", HOSTS["outside"].fqdn], check=False)
        assert found.exited == 0 and HOSTS["outside"].address in found.stdout, found
    restored = _seen()
    assert restored == built, [(a, b) for a, b in zip(built, restored, strict=False) if a != b]
    if lab.status()["release"] == "trixie":  # mailkit check is green on the release it is tested on (test_80)
        assert [row for row in restored if not row[2]] == []
    if new:  # the key the guide made is the one the zone kept (an older snapshot has its own, as published)
        assert _dkim_records(lab) == published


def _seen() -> list[tuple[str, str, bool]]:
    """What `mailkit check` sees of the mail host, from the outside host: every row's group, name and verdict."""
    return [(r.group, r.name, r.ok) for r in check_server("lab:mail", vantage="lab:outside").rows]


def _dkim_records(lab: Lab) -> str:
    """example.org's DKIM keys as the lab's name server has them (whichever selectors part 3's rotation left)."""
    return "\n".join(sorted(line for line in lab.zones()["db.example.org"].splitlines() if "DKIM1" in line))
