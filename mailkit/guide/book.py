"""The guide as a book: a static website built from the stored notebooks, for readers who never run them.

Built with nbconvert (already installed with JupyterLab, so nothing new to trust or keep up; Jupyter Book 2 would
bring a Node.js toolchain for a search box and a theme): each chapter's notebook as it is stored, outputs and all,
on a page of its own, in the guide's order (:data:`~mailkit.guide.chapters.CHAPTERS`), with a table of contents,
the previous and next chapter on every page, and a search over every section's text that works from the files alone
(no server). Links between notebooks (``02-dovecot.ipynb#section-4``) become links between pages; a check table's
fix hint lands on its section. The page's own style: text tables aligned left, code and configuration in a
monospaced font that scrolls sideways on a phone instead of overflowing it.

:func:`broken_links` reads the built pages back: every link inside the book must reach a page and an anchor on it.

>>> page_name("02-dovecot.ipynb")
'02-dovecot.html'
>>> relink('<a href="02-dovecot.ipynb#section-4">part 2</a> <a href="https://www.postfix.org/">P</a>')
'<a href="02-dovecot.html#section-4">part 2</a> <a href="https://www.postfix.org/">P</a>'
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from nbconvert import HTMLExporter

from mailkit.guide.chapters import CHAPTERS, Chapter
from mailkit.guide.runner import NOTEBOOK_DIR

TITLE = "Getting your e-mail out of the cloud"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

STYLE = """
body { font-family: system-ui, sans-serif; line-height: 1.5; margin: 0 auto; max-width: 60rem; padding: 0 1rem; }
nav { display: flex; flex-wrap: wrap; gap: 1rem; padding: .75rem 0; border-bottom: 1px solid #d0d7de; }
nav.bottom { border-top: 1px solid #d0d7de; border-bottom: 0; }
a { color: #0969da; text-decoration: underline; }
a code { color: #0969da; }
code, pre, kbd { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .9em; }
pre { overflow-x: auto; padding: .5rem; background: #f6f8fa; white-space: pre; }
p, li, td, th { overflow-wrap: break-word; }
:not(pre) > code { overflow-wrap: anywhere; }
table { display: block; overflow-x: auto; border-collapse: collapse; max-width: 100%; }
th, td { text-align: left !important; vertical-align: top; padding: .2rem .5rem; border-bottom: 1px solid #eaeef2; }
img { max-width: 100%; }
.anchor-link { visibility: hidden; text-decoration: none; }
h1:hover .anchor-link, h2:hover .anchor-link, h3:hover .anchor-link { visibility: visible; }
.jp-InputPrompt, .jp-OutputPrompt, .prompt { display: none; }
#search-results li { margin: .25rem 0; }
"""

SEARCH_SCRIPT = """
function bookSearch(input) {
  const words = input.value.toLowerCase().split(/\\s+/).filter(w => w.length > 1);
  const list = document.getElementById("search-results");
  list.innerHTML = "";
  if (!words.length) return;
  for (const entry of window.BOOK_INDEX) {
    const text = entry.text.toLowerCase();
    if (words.every(w => text.includes(w) || entry.title.toLowerCase().includes(w))) {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = entry.href;
      link.textContent = entry.chapter + ": " + entry.title;
      item.appendChild(link);
      list.appendChild(item);
    }
  }
}
"""


def page_name(notebook: str) -> str:
    return notebook.removesuffix(".ipynb") + ".html"


def relink(body: str) -> str:
    """Links to the guide's notebooks made links to its pages."""
    return re.sub(r'href="(\d\d-[a-z0-9-]+)\.ipynb(#[^"]*)?"', lambda m: f'href="{m[1]}.html{m[2] or ""}"', body)


def _exporter() -> HTMLExporter:

    exporter = HTMLExporter(template_name="basic")
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    return exporter


def _highlight_css() -> str:
    from pygments.formatters import HtmlFormatter

    return str(HtmlFormatter().get_style_defs(".highlight"))


@dataclass(frozen=True)
class Section:
    """A heading of a chapter, for the search index and the contents."""

    chapter: str
    title: str
    href: str
    text: str


class _Sections(HTMLParser):
    """The headings (with their ids) of a rendered chapter and the text under each."""

    def __init__(self, chapter: str, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.chapter, self.page = chapter, page
        self.sections: list[Section] = []
        self._heading: str | None = None
        self._title = ""
        self._text: list[str] = []
        self._current: tuple[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("h1", "h2", "h3"):
            self._close()
            self._heading, self._title = dict(attrs).get("id") or "", ""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3") and self._heading is not None:
            self._current = (self._heading, self._title.replace("¶", "").strip())
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self._title += data
        elif self._current is not None:
            self._text.append(data)

    def _close(self) -> None:
        if self._current is not None:
            anchor, title = self._current
            text = " ".join(" ".join(self._text).split())[:4000]
            self.sections.append(Section(self.chapter, title, f"{self.page}#{anchor}", text))
        self._current, self._text = None, []

    def close(self) -> None:
        super().close()
        self._close()


def _page(title: str, body: str, nav: str, css: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{css}</style>
</head>
<body>
{nav}
<main>
{body}
</main>
{nav.replace("<nav>", '<nav class="bottom">', 1)}
</body>
</html>
"""


def _nav(chapters: Sequence[Chapter], index: int | None) -> str:
    links = ['<a href="index.html">Contents</a>']
    if index is not None and index > 0:
        before = chapters[index - 1]
        links.append(f'<a href="{page_name(before.notebook)}" rel="prev">&larr; {html.escape(before.title)}</a>')
    if index is not None and index + 1 < len(chapters):
        after = chapters[index + 1]
        links.append(f'<a href="{page_name(after.notebook)}" rel="next">{html.escape(after.title)} &rarr;</a>')
    return "<nav>" + " ".join(links) + "</nav>"


def build(output: Path, notebooks: Path = NOTEBOOK_DIR, chapters: Sequence[Chapter] = CHAPTERS) -> list[Path]:
    """Write the book into ``output`` (index.html, one page per chapter, search.js); the pages written."""
    import nbformat

    output.mkdir(parents=True, exist_ok=True)
    exporter = _exporter()
    css = STYLE + _highlight_css()
    written, sections = [], []
    for number, chapter in enumerate(chapters):
        notebook = nbformat.read(notebooks / chapter.notebook, as_version=4)
        body, _ = exporter.from_notebook_node(notebook)
        body = relink(_ANSI.sub("", body))
        page = page_name(chapter.notebook)
        found = _Sections(chapter.title, page)
        found.feed(body)
        found.close()
        sections += found.sections
        title = f"{chapter.number}. {chapter.title} - {TITLE}"
        (output / page).write_text(_page(title, body, _nav(chapters, number), css))
        written.append(output / page)
    entries = [s.__dict__ for s in sections]
    (output / "search.js").write_text("window.BOOK_INDEX = " + json.dumps(entries, ensure_ascii=False) + ";\n")
    items = "\n".join(
        f'<li><a href="{page_name(c.notebook)}">{c.number}. {html.escape(c.title)}</a></li>' for c in chapters
    )
    index = f"""<h1>{html.escape(TITLE)}</h1>
<p>A mail server of your own on Debian, explained step by step: each chapter is a notebook of the guide, shown here
as it ran in the lab, outputs and checks included.</p>
<ol>
{items}
</ol>
<h2 id="search">Search</h2>
<p><input type="search" placeholder="words to find" oninput="bookSearch(this)" aria-label="search the guide"></p>
<ul id="search-results"></ul>
<script src="search.js"></script>
<script>{SEARCH_SCRIPT}</script>"""
    (output / "index.html").write_text(_page(TITLE, index, _nav(chapters, None), css))
    return [output / "index.html", *written]


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for key in ("id", "name"):
            if values.get(key):
                self.ids.add(str(values[key]))
        if tag == "a" and values.get("href"):
            self.hrefs.append(str(values["href"]))


def broken_links(directory: Path) -> list[str]:
    """Every link inside the book that does not reach a page, or an anchor on it: ``page: href``."""
    pages: dict[str, _Links] = {}
    for path in sorted(directory.glob("*.html")):
        parser = _Links()
        parser.feed(path.read_text())
        pages[path.name] = parser
    broken = []
    for name, parser in pages.items():
        for href in parser.hrefs:
            if re.match(r"^[a-z][a-z0-9+.-]*:", href):
                continue  # another site (https:, mailto:): not the book's to check
            target, _, anchor = href.partition("#")
            page = pages.get(target or name)
            if page is None or (anchor and anchor not in page.ids):
                broken.append(f"{name}: {href}")
    return broken
