"""The book built from the committed notebooks: every chapter in order, every internal link and anchor resolving
(the link check CI runs), no raw ANSI codes, pages a phone can read; and the link check finds a broken link."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from mailkit.cli import main
from mailkit.guide import book
from mailkit.guide.chapters import CHAPTERS


def test_the_book_has_every_chapter_in_order_and_no_broken_link(tmp_path: Path) -> None:
    pages = book.build(tmp_path)
    assert [p.name for p in pages] == ["index.html", *(book.page_name(c.notebook) for c in CHAPTERS)]
    assert book.broken_links(tmp_path) == []
    index = (tmp_path / "index.html").read_text()
    assert [m for m in re.findall(r'<li><a href="([^"]+)"', index)] == [p.name for p in pages[1:]]
    for page in pages:
        text = page.read_text()
        assert "\x1b[" not in text, f"{page.name}: raw ANSI codes"
        assert 'name="viewport"' in text and "text-align: left !important" in text
    first, second = pages[1].read_text(), pages[2].read_text()
    assert f'href="{pages[2].name}" rel="next"' in first and f'href="{pages[1].name}" rel="prev"' in second
    assert 'id="section-4"' in second, "the guide's section anchors survive"
    assert "BOOK_INDEX" in (tmp_path / "search.js").read_text()


def test_the_link_check_finds_a_page_or_an_anchor_that_is_not_there(tmp_path: Path) -> None:
    (tmp_path / "a.html").write_text('<h2 id="here">x</h2><a href="#here">ok</a><a href="#gone">1</a>')
    (tmp_path / "b.html").write_text(
        '<a href="a.html#here">ok</a><a href="c.html">2</a><a href="https://x.test/">e</a>'
    )
    assert book.broken_links(tmp_path) == ["a.html: #gone", "b.html: c.html"]


def test_guide_book_builds_and_says_where(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["guide", "book", "--output", str(tmp_path / "book")])
    assert result.exit_code == 0, result.output
    assert f"{len(CHAPTERS) + 1} pages" in result.output and (tmp_path / "book" / "index.html").is_file()
