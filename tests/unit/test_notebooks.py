"""The notebooks as documents: every setting explained with its link, outputs stored and clean."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import mailkit
from mailkit.core.result import Result
from mailkit.guide.part1 import Part1
from mailkit.guide.part2 import Part2

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
POSTCONF = "https://www.postfix.org/postconf.5.html#"


def _cells(name: str) -> list[dict]:
    return json.loads((NOTEBOOKS / name).read_text())["cells"]


def _prose(name: str) -> str:
    return "\n".join("".join(c["source"]) for c in _cells(name) if c["cell_type"] == "markdown")


def test_every_part1_setting_is_explained_with_its_reference_link() -> None:
    prose = _prose("01-postfix.ipynb")
    settings = Part1().settings()
    assert len(settings) >= 15
    missing = sorted(s for s in settings if f"({POSTCONF}{s})" not in prose)
    assert not missing, f"settings written without a linked explanation: {missing}"


def test_every_part2_postfix_setting_is_explained_with_its_reference_link() -> None:
    prose = _prose("02-dovecot.ipynb")
    settings = Part2(Part1()).settings()
    assert len(settings) >= 14
    missing = sorted(s for s in settings if f"({POSTCONF}{s})" not in prose)
    assert not missing, f"settings written without a linked explanation: {missing}"


STRUCTURE = {
    "uid",
    "gid",
    "home",
    "mode",
    "user",
    "group",
    "inbox",
    "separator",
    "special_use",
    "auto",
    "args",
    "driver",
}


def test_every_dovecot_setting_of_both_generations_is_linked_to_its_version_docs() -> None:
    prose = _prose("02-dovecot.ipynb")
    both = Part2(Part1()).configs_side_by_side()
    for version, text in (("2.3", both.left), ("2.4", both.right)):
        names = {
            line.split("=")[0].strip()
            for line in text.splitlines()
            if "=" in line and not line.lstrip().startswith("#")
        } - STRUCTURE
        anchor = "core_setting-{}" if version == "2.3" else "settings.html#{}"
        missing = sorted(n for n in names if f"doc.dovecot.org/{version}" not in prose or anchor.format(n) not in prose)
        assert not missing, f"Dovecot {version} settings without a linked explanation: {missing}"


def test_every_linked_setting_is_one_postfix_knows_by_that_name() -> None:
    prose = _prose("01-postfix.ipynb")
    for name in re.findall(re.escape(POSTCONF) + r"([a-z0-9_]+)", prose):
        assert re.fullmatch(r"[a-z][a-z0-9_]+", name)


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")), ids=lambda p: p.name)
def test_stored_outputs_are_complete_and_deterministic(path: Path) -> None:
    cells = json.loads(path.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    parameters = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(parameters) == 1, "one parameters cell (papermill style)"
    assert [c.get("execution_count") for c in code] == list(range(1, len(code) + 1)), "counts 1, 2, 3... (nbval)"
    for cell in code:
        assert "execution" not in cell.get("metadata", {}), "no timing metadata"
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", f"stored error in {''.join(cell['source'])[:60]}"
            text = json.dumps(output)
            assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", text), "timestamp in a stored output"
            assert " at 0x" not in text, "object id in a stored output"
            assert "/var/lib/mailkit/backups/" not in text
    with_output = [c for c in code if c.get("outputs")]
    assert len(with_output) >= len(code) // 2, "the notebook must be stored with its outputs"


def test_every_section_a_fix_hint_names_has_an_anchor_in_its_notebook() -> None:
    from mailkit.guide import part1, part2_checks

    sources = [Path(part1.__file__).read_text(), Path(part2_checks.__file__).read_text()]
    named = set()
    for source in sources:
        named |= set(re.findall(r"section (\d+)", source))
        named |= {m[0] for m in re.findall(r"sections (\d+)-(\d+)", source)}
    assert named, "the checks' fix hints name guide sections"
    for notebook in ("01-postfix.ipynb", "02-dovecot.ipynb"):
        prose = _prose(notebook)
        anchors = set(re.findall(r'<a id="section-(\d+)"></a>', prose))
        assert anchors >= {str(n) for n in range(1, 10)}, f"{notebook}: numbered sections need anchors"
    assert {n for n in named} <= set(re.findall(r'<a id="section-(\d+)"></a>', _prose("01-postfix.ipynb")))


def test_every_part3_postfix_setting_is_explained_with_its_reference_link() -> None:
    from mailkit.core.resources import Postconf
    from mailkit.guide.part3 import Part3

    prose = _prose("03-spam-outbound.ipynb")
    from mailkit.core.values import Hostname, Password
    from mailkit.guide.smarthost import Smarthost

    relay = Smarthost(Hostname("relay.example.net"), "example-org", Password("a relay password"))
    everything = Part3(Part1(), smarthost=relay).everything()  # section 8's settings too
    settings = {k for r in everything if isinstance(r, Postconf) for k in r.settings}
    assert len(settings) >= 13
    missing = sorted(s for s in settings if f"({POSTCONF}{s})" not in prose)
    assert not missing, f"settings written without a linked explanation: {missing}"
    for rfc in ("rfc7208", "rfc6376", "rfc9989", "rfc8301", "rfc8601"):
        assert f"https://www.rfc-editor.org/rfc/{rfc}" in prose
    anchors = set(re.findall(r'<a id="section-(\d+)"></a>', prose))
    from mailkit.guide import part3_checks

    named = set(re.findall(r"section (\d+)", Path(part3_checks.__file__).read_text()))
    assert named and named <= anchors


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")), ids=lambda p: p.name)
def test_no_private_key_or_password_hash_in_any_stored_output(path: Path) -> None:
    outputs = json.dumps([c.get("outputs", []) for c in json.loads(path.read_text())["cells"]])
    assert "PRIVATE KEY" not in outputs
    assert not re.search(r"\{(ARGON2ID|BLF-CRYPT|SHA512-CRYPT)\}\$", outputs), "a password hash in an output"


def test_day_two_commands_are_built_from_the_layout_and_shown_as_typed() -> None:
    from mailkit.core.onserver import on_server

    class Recorded:
        def run(self, argv: list[str], *, input: str | bytes | None = None, check: bool = True) -> Result:
            replies = {"postqueue": ("Mail queue is empty\n", 0), "postmap": ("", 1)}
            out, code = replies[argv[0]]
            return Result(" ".join(argv), out, "", code)

    commands = Part1().day_two_commands()
    assert commands[0] == ["postmap", "-q", "alice@example.org", "lmdb:/etc/postfix/vmailbox"]
    assert commands[-1] == ["postqueue", "-p"]
    shown = str(
        on_server(Recorded(), ["postmap", "-q", "x y@example.org", "lmdb:/etc/postfix/vmailbox"], ["postqueue", "-p"])
    )
    assert (
        shown
        == "$ postmap -q 'x y@example.org' lmdb:/etc/postfix/vmailbox\n(exit 1)\n$ postqueue -p\nMail queue is empty"
    )


_HINT = re.compile(r"(?:\{(\w+)\}|(\d\d-[\w-]+\.ipynb)) sections? (\d+)(?:-\d+)?(?::\s*([^\"']*))?")
#: What a hint names that its section must explain: a setting (snake_case) or a tool a person runs.
_SETTING = re.compile(r"\b(?:[a-z][a-z0-9]*(?:_[a-z0-9]+)+|certbot|doveadm|postmap|rspamadm|sievec)\b")


def _sections(notebook: str) -> dict[str, str]:
    """Each numbered section's sources (prose and code), by its number."""
    found: dict[str, str] = {}
    current = None
    for cell in _cells(notebook):
        source = "".join(cell["source"])
        anchor = re.search(r'<a id="section-(\d+)"></a>', source)
        if cell["cell_type"] == "markdown" and source.startswith("## "):
            current = anchor[1] if anchor else None
        if current is not None:
            found[current] = found.get(current, "") + source + "\n"
    return found


def test_every_fix_hint_points_at_the_section_that_explains_it() -> None:
    """Issue 21: hints in the checks sent users to the wrong section ('section 8' for smtpd_tls_auth_only, which is
    section 7). Every 'NN-name.ipynb section K' in mailkit names a section that exists, and the settings the hint
    names are in that section."""
    import importlib

    root = Path(mailkit.__file__).parent
    hints = []
    for path in sorted(root.rglob("*.py")):
        module = importlib.import_module(".".join(path.relative_to(root.parent).with_suffix("").parts))
        for name, literal, number, rest in _HINT.findall(path.read_text()):
            notebook = literal or getattr(module, name, "")
            assert notebook.endswith(".ipynb"), f"{path.name}: {{{name}}} is not a notebook name"
            hints.append((path.name, notebook, number, rest))
    assert len(hints) >= 40, "the checks' fix hints name guide sections"
    wrong = []
    for where, notebook, number, rest in hints:
        sections = _sections(notebook)
        if number not in sections:
            wrong.append(f"{where}: {notebook} has no section {number}")
            continue
        for setting in _SETTING.findall(rest):
            if setting not in sections[number]:
                wrong.append(f"{where}: {notebook} section {number} does not mention {setting}")
    assert wrong == []


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_opening_a_notebook_in_jupyterlab_leaves_it_unchanged(path: Path) -> None:
    """JupyterLab rewrites a notebook whose kernel name differs from the installed kernel's (the tab turns unsaved,
    autosave writes it, `git status` is dirty for a reader who only read)."""
    from jupyter_client.kernelspec import KernelSpecManager

    installed = KernelSpecManager().get_kernel_spec("python3")
    kernel = json.loads(path.read_text())["metadata"]["kernelspec"]
    assert (kernel["name"], kernel["display_name"]) == ("python3", installed.display_name)
