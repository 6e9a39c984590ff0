"""The matrix's planning and its report: pure logic, tested with worker results of the real shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailkit.core.errors import UsageError
from mailkit.lab.layout import lab_instance
from mailkit.matrix.releases import plan_instances
from mailkit.matrix.report import _example, build_report, check_rows, compare_with, html_page, markdown, write_report
from mailkit.matrix.suite import plan as suite_plan


def test_each_release_gets_its_own_instance_and_namespace() -> None:
    plan = plan_instances(["bookworm", "trixie", "sid"])
    assert [i for i, _, _ in plan] == [1, 2, 3], "instance 0 is the guide's own lab: never used by the matrix"
    assert len({ns for _, _, ns in plan}) == 3 and not any(ns.startswith("mailkit-") for _, _, ns in plan)
    with pytest.raises(UsageError, match="named twice"):
        plan_instances(["trixie", "trixie"])
    with pytest.raises(UsageError, match="unknown release"):
        plan_instances(["trixie", "woody"])
    with pytest.raises(UsageError, match="at least one"):
        plan_instances([])


def test_the_suites_other_releases_run_in_labs_the_matrix_does_not_use_and_only_their_lab_tests() -> None:
    first, second, third, provider = suite_plan(["trixie", "bookworm", "sid"])
    assert (first.instance, first.namespace) == (0, None), "the first release runs here, in the guide's lab"
    assert [second.instance, third.instance] == [9, 8], "counted down: the matrix test meanwhile uses 1, 2, 3"
    # Issue 22: the first release's provider mode (about seven minutes) in a lab of its own beside it.
    assert (provider.release, provider.instance, provider.namespace) == ("trixie", 7, "mksuite7")
    assert provider.argv(["-q"])[3:5] == ["-q", "tests/lab/test_90_provider.py"]
    for run in (first, second, third):
        assert "--ignore=tests/lab/test_90_provider.py" in run.argv(["-q"]), run.name
    assert provider.name == "trixie provider mode"
    env = second.env(["trixie", "bookworm", "sid"])
    assert env["MAILKIT_TEST_RELEASES"] == "bookworm" and env["MAILKIT_SUITE_RELEASES"] == "trixie,bookworm,sid"
    assert (env["MAILKIT_LAB_INSTANCE"], env["MAILKIT_NETNS"], env["MAILKIT_LAB_PROXY"]) == (
        "9",
        "mksuite9",
        "external",
    )
    assert "MAILKIT_NETNS" not in first.env(["trixie", "bookworm"]), "the first release stays in this namespace"
    argv = second.argv(["-q"])
    assert "tests/lab" in argv and "--ignore=tests/lab/test_70_matrix.py" in argv
    argv = provider.argv(["-q"])
    assert "tests/unit" in argv and "mailkit" in argv, "the tests that need no lab run in the shortest lane"
    assert "tests/unit" not in second.argv(["-q"]) + third.argv(["-q"]), "and only once"
    first_argv = first.argv(["-q"])
    assert "--ignore=tests/unit" in first_argv and "--ignore=mailkit" in first_argv
    assert "--ignore=tests/browser/test_jupyterlab.py" not in first_argv, "JupyterLab runs against the first's lab"
    alone, its_provider = suite_plan(["trixie"])
    assert "--ignore=tests/unit" in alone.argv(["-q"]) and "--ignore=tests/lab/test_90_provider.py" in alone.argv([])
    assert its_provider.instance == 9 and its_provider.once, "a release alone: provider mode and the unit tests"
    with pytest.raises(UsageError):
        suite_plan(["trixie", "trixie"])
    with pytest.raises(UsageError, match="at most four"):
        suite_plan(["trixie", "bookworm", "sid", "forky", "bullseye"])
    with pytest.raises(UsageError, match="unknown release"):
        suite_plan(["trixie", "woody"])


def test_lab_instance_is_a_digit_or_a_clear_error() -> None:
    assert lab_instance({"MAILKIT_LAB_INSTANCE": "9"}) == 9
    for bad in ("10", "-1", "x", "1; rm -rf /"):
        with pytest.raises(ValueError, match="MAILKIT_LAB_INSTANCE"):
            lab_instance({"MAILKIT_LAB_INSTANCE": bad})


def _two() -> list[dict]:
    bookworm, trixie = _example("bookworm", ok=True), _example("trixie", ok=False, detail="550 refused")
    trixie["versions"] = {"postfix": "3.10.13"}
    bookworm["versions"] = {"postfix": "3.7.11"}
    trixie["files"] = {"main.cf (postconf -n)": "a = 1\nb = 2\n"}
    return [bookworm, trixie]


def test_report_counts_failures_per_release_and_is_not_ok_with_one() -> None:
    report = build_report(_two(), parts=[1], wall_seconds=42.0)
    assert report["summary"]["bookworm"] == {"passed": 1, "failed": 0, "error": None}
    assert report["summary"]["trixie"]["failed"] == 1 and report["ok"] is False
    assert "+b = 2" in report["file_diffs"]["main.cf (postconf -n)"]["trixie"], "a diff per file, release to release"
    errored = _example("sid", ok=True)
    errored["error"] = "worker died:\nTraceback"
    assert build_report([errored], parts=[1], wall_seconds=1)["ok"] is False, "a worker error fails the matrix"
    assert build_report([], parts=[1], wall_seconds=1)["ok"] is False, "no result is no pass"


def test_duplicate_check_names_in_one_part_stay_apart() -> None:
    result = _example("trixie", ok=True)
    result["parts"][0]["checks"].append(dict(result["parts"][0]["checks"][0], ok=False))
    rows = check_rows(result)
    assert list(rows) == ["part 1 / delivery / to alice", "part 1 / delivery / to alice #2"]


def test_baseline_lists_new_failures_fixed_checks_and_changed_values() -> None:
    old = build_report(_two(), parts=[1], wall_seconds=1)
    now = _two()
    now[0]["parts"][0]["checks"][0].update(ok=False, detail="timeout")  # bookworm: newly failing
    now[1]["parts"][0]["checks"][0].update(ok=True, detail="250")  # trixie: fixed
    now[1]["versions"] = {"postfix": "3.10.14"}
    diff = compare_with(build_report(now, parts=[1], wall_seconds=1), old)
    assert diff["new_failures"] == ["bookworm: part 1 / delivery / to alice: timeout"]
    assert diff["fixed"] == ["trixie: part 1 / delivery / to alice"]
    assert diff["changed_versions"] == ["trixie: postfix 3.10.13 -> 3.10.14"]
    same = _two()
    same[0]["parts"][0]["checks"][0]["detail"] = "251"
    changed = compare_with(build_report(same, parts=[1], wall_seconds=1), old)["changed_values"]
    assert changed == ["bookworm: part 1 / delivery / to alice: '250' -> '251'"]


def test_three_renderings_of_one_report(tmp_path: Path) -> None:
    report = build_report(_two(), parts=[1], wall_seconds=42.0, baseline={"checks": {}, "results": {}})
    paths = write_report(report, tmp_path)
    assert sorted(p.name for p in paths) == ["report.html", "report.json", "report.md"]
    assert json.loads((tmp_path / "report.json").read_text())["summary"]["trixie"]["failed"] == 1
    md = markdown(report)
    for section in ("## Versions", "## Time per part", "## Checks", "## Against the baseline", "## What the templates"):
        assert section in md
    assert "| part 1 / delivery / to alice | ok 250 | **FAIL** 550 refused |" in md
    page = html_page(report)
    assert page.startswith("<!doctype html>") and "<span class='fail'>FAIL</span> 550 refused" in page
    assert "3.7.11" in page and "3.10.13" in page and "<details>" in page


def test_a_pipe_or_markup_in_a_seen_value_cannot_break_the_tables() -> None:
    result = _example("trixie", ok=False, detail="a | b <script>")
    report = build_report([result], parts=[1], wall_seconds=1)
    assert "a \\| b <script>" in markdown(report)
    assert "<script>" not in html_page(report) and "&lt;script&gt;" in html_page(report)
