"""A plan shows a content once when several files get the same one (part 3's switched-off rspamd modules on a
host with no internet), and never groups what it only describes (secrets, files removed whole)."""

from __future__ import annotations

from mailkit.core.display import plan_html, plan_text, same_diff_runs
from mailkit.core.facts import FileState
from mailkit.core.resources import File
from mailkit.guide.part1 import Part1
from mailkit.guide.part3 import NETWORK_MODULES, Part3

ABSENT = FileState(None)


def _offline_rspamd_changes():
    files = [r for r in Part3(Part1(), offline=True).rspamd_config() if isinstance(r, File)]
    return [c for c in (f.compare([ABSENT]) for f in files) if c is not None]


def test_the_switched_off_modules_show_their_content_once_and_every_file_by_name() -> None:
    changes = _offline_rspamd_changes()
    text = plan_text(changes)
    assert text.count("+enabled = false;") == 1
    assert text.count("+enabled = true;") == 1  # the signing file has a content of its own, shown whole
    for module in NETWORK_MODULES:
        assert f"* create /etc/rspamd/local.d/{module}.conf" in text
    assert f"(the same change in each of these {len(NETWORK_MODULES)} files:)" in text
    # by hand: every file is still edited, one line each
    assert sum(f"editor /etc/rspamd/local.d/{m}.conf" in text for m in NETWORK_MODULES) == len(NETWORK_MODULES)
    html = plan_html(changes)
    assert html.count("+enabled = false;") == 1
    assert html.count("<code>create /etc/rspamd/local.d/") == len(NETWORK_MODULES) + 1


def test_files_removed_whole_or_secret_are_never_grouped_even_when_their_descriptions_match() -> None:
    gone = [File(p, "", present=False).compare([FileState(b"a\nb\n", 0o644, "root", "root")]) for p in ("/x", "/y")]
    secret = [File(p, "k", secret=True).compare([ABSENT]) for p in ("/k1", "/k2")]
    changes = [c for c in (*gone, *secret) if c is not None]
    assert [len(run) for run in same_diff_runs(changes)] == [1, 1, 1, 1]
    assert plan_text(changes).count("(the whole file goes: 2 lines, not shown)") == 2


def test_different_contents_are_not_grouped() -> None:
    changes = [File(p, p).compare([ABSENT]) for p in ("/a", "/b")]
    assert [len(run) for run in same_diff_runs([c for c in changes if c])] == [1, 1]
