"""The upgrade notebook (05) replayed with nbval on a bookworm lab: the finished bookworm server (parts 1 to 4, from
the part 4 snapshot) upgraded to trixie.

It runs last for the bookworm lab (this directory sorts after tests/lab and tests/reliability): afterwards the
mail host runs trixie. On the other releases there is nothing to upgrade from, and the test says so.
"""

from __future__ import annotations

import pytest

from mailkit.lab.lab import Lab
from tests.replay import NOTEBOOKS, replay

pytestmark = pytest.mark.lab

NOTEBOOK = NOTEBOOKS / "05-upgrade.ipynb"


def test_bookworm_server_upgrades_to_trixie_keeping_every_promise(lab: Lab) -> None:
    release = lab.status()["release"]
    if release != "bookworm":
        pytest.skip(f"the upgrade starts from bookworm; this lab runs {release}")
    lab.reset(to_part=4)  # the finished bookworm server, as a reader comes to the upgrade (from its snapshot)
    replay([NOTEBOOK], cell_timeout=2400)
    with_trixie = lab.status()
    assert with_trixie["state"] == "up"
    from mailkit.lab.lab_target import lab_connection

    with lab_connection("mail") as mail:
        assert "trixie" in mail.run(["cat", "/etc/os-release"]).stdout
    lab.reset()  # later tests on this lab get the bookworm server they expect
