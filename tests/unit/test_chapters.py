"""The guide's chapters are listed once, and the list is the notebooks folder (issue 21, item 3)."""

from __future__ import annotations

import re
from pathlib import Path

from mailkit.classroom.board import PART_COLUMNS
from mailkit.classroom.workshop import WORKSHOP_PARTS
from mailkit.guide.chapters import CHAPTERS, DEFAULT_PARTS, SERVER_PARTS
from mailkit.guide.runner import NOTEBOOK_DIR, notebooks_for
from mailkit.status.rows import GUIDE_PARTS


def test_every_numbered_notebook_is_one_chapter_and_every_chapter_has_its_notebook() -> None:
    on_disk = sorted(p.name for p in Path(NOTEBOOK_DIR).glob("[0-9][0-9]-*.ipynb"))
    assert on_disk == sorted(c.notebook for c in CHAPTERS)
    for c in CHAPTERS:
        assert re.match(rf"{c.number:02}-", c.notebook), c
        assert [p.name for p in notebooks_for([c.number])] == [c.notebook], "--parts N runs chapter N, and only it"
    assert len({c.number for c in CHAPTERS}) == len(CHAPTERS), "no two chapters share a number"


def test_everything_that_loops_over_parts_reads_the_registry() -> None:
    assert WORKSHOP_PARTS == SERVER_PARTS == tuple(int(p) for p in DEFAULT_PARTS.split(","))
    assert set(GUIDE_PARTS) - {0} == set(SERVER_PARTS) and set(PART_COLUMNS) == {0, *SERVER_PARTS}
    assert 5 not in SERVER_PARTS, "the upgrade is a chapter beside the parts, not a part mailkit check grades"


def test_services_and_ports_are_the_chapters_facts() -> None:
    from mailkit.guide.chapters import PART_OF_PACKAGE, PORTS
    from mailkit.remote import source
    from mailkit.status.inside import SERVICES
    from mailkit.status.outside import expected_ports

    assert SERVICES is PART_OF_PACKAGE
    assert expected_ports([1]) == [25] and expected_ports([1, 2, 3, 4]) == [25, 465, 587, 143, 993, 443, 4190]
    assert {part for _, _, part in PORTS.values()} == {1, 2, 3, 4}, "part 3 opens 443 for the MTA-STS policies"
    probe = source("probe")
    for _, kind, _ in PORTS.values():
        protocol, _, start = kind.partition("-")
        assert f"def {protocol}(" in probe and start in ("tls", "starttls"), f"the probe speaks {kind}"


def test_each_server_part_registers_its_checks_and_its_drift_and_the_upgrade_neither() -> None:
    import pytest

    from mailkit.core.resources import Postconf
    from mailkit.guide import chapters
    from mailkit.guide.part1 import Part1
    from mailkit.guide.part2 import Part2
    from mailkit.guide.part3 import Part3
    from mailkit.guide.part4 import Part4
    from mailkit.guide.parts import Parts

    assert all(c.verify and c.drift for c in CHAPTERS if c.server_part)
    assert not any(c.verify or c.drift for c in CHAPTERS if not c.server_part)
    part1 = Part1()
    part2, part3 = Part2(part1), Part3(part1)
    guide = Parts(part1, part2, part3, Part4(part3, part2))
    found = chapters.drift(guide, [1, 3, 4], None, "[relay.example.net]:587")  # type: ignore[arg-type]
    assert sorted(found) == [1, 3, 4], "only the parts the server has"
    relay = [r for r in found[3] if isinstance(r, Postconf) and "relayhost" in r.settings]
    assert [r.settings["relayhost"] for r in relay] == ["[relay.example.net]:587"]
    assert not any(isinstance(r, Postconf) and "relayhost" in r.settings for r in chapters.drift(guide, [3], None)[3])  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="chapter 5"):
        chapters.verify_parts(guide, [5], None, None, None)  # type: ignore[arg-type]
