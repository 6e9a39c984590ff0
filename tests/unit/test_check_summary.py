"""Checks of an earlier chapter, run again in a later one: one line when they pass, never a folded failure."""

from __future__ import annotations

import pytest

from mailkit.core.checks import CheckResult, ChecksFailed, CheckSummary, report

PASSED = [CheckResult("delivery", f"to mailbox {n}", True, "250") for n in range(40)]


def test_passing_checks_again_show_as_one_line_with_the_table_folded_under_it() -> None:
    shown = report([*PASSED, CheckResult("dns", "PTR", True, "skipped: lab", skipped=True)], again="Part 1, again")
    assert isinstance(shown, CheckSummary)
    assert str(shown) == "Part 1, again: 40 checks passed, 1 skipped"
    page = shown._repr_html_()
    assert page.startswith("<details><summary><b>Part 1, again: 40 checks passed, 1 skipped</b>")
    assert page.count("<tr>") == 42  # nothing left out: the header and every row, folded


def test_a_failure_among_them_fails_the_cell_and_is_shown_open(monkeypatch: pytest.MonkeyPatch) -> None:
    failing = [*PASSED, CheckResult("delivery", "to bob", False, "550 5.1.1 unknown", "see part 1, section 9")]
    with pytest.raises(ChecksFailed):
        report(failing, again="Part 1, again")
    summary = CheckSummary(failing, "Part 1, again")
    assert summary.line() == "Part 1, again: 40 checks passed, 1 FAILED"
    assert summary._repr_html_().startswith("<details open>")
    assert "550 5.1.1 unknown" in str(summary)
