"""The book (``mailkit guide book``) as a reader sees it, in Chromium: served over HTTP as a web host would.

What is looked at, on every page: nothing wider than a laptop's window or a phone's (code and tables scroll inside
themselves, never the page); plans, diffs and the commands to type in a monospaced font and visible; links that
look like links, code-styled names included; check tables aligned left; no raw terminal colour codes; images
loaded. And the reader's ways through it: the search box finds a section and its link lands on it; "next" leads
through every chapter in the guide's order.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from mailkit.guide import book
from mailkit.guide.chapters import CHAPTERS
from tests.browser.conftest import DESKTOP, PHONE, overflow, resize

PAGES = ["index.html", *(book.page_name(c.notebook) for c in CHAPTERS)]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The book built from the stored notebooks, served on loopback; its base URL."""
    output = tmp_path_factory.mktemp("book")
    book.build(output)
    assert book.broken_links(output) == []
    handler = functools.partial(_Quiet, directory=str(output))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _wide_things(driver) -> list[str]:
    """Elements whose right edge is past the window: what a reader would have to scroll the page for."""
    return driver.execute_script(
        """
        const out = [];
        for (const el of document.querySelectorAll('main *')) {
          const box = el.getBoundingClientRect();
          if (box.width === 0) continue;
          // inside something that scrolls sideways by itself (a code block, a table): that is what it is for
          let p = el.parentElement, scrolls = false;
          while (p && p !== document.body) {
            const s = getComputedStyle(p);
            if ((s.overflowX === 'auto' || s.overflowX === 'scroll') && p.scrollWidth > p.clientWidth - 1) {
              scrolls = true; break;
            }
            p = p.parentElement;
          }
          if (!scrolls && box.right > window.innerWidth + 1) out.push(el.tagName + ': ' + el.textContent.slice(0, 80));
        }
        return out.slice(0, 10);
        """
    )


@pytest.mark.parametrize("page", PAGES)
def test_a_page_fits_a_laptop_and_a_phone_and_its_images_load(browser, site: str, page: str) -> None:
    for size in (DESKTOP, PHONE):
        resize(browser, size)
        browser.get(site + page)
        assert overflow(browser) <= 0, f"{page} at {size}: {_wide_things(browser)}"
        assert _wide_things(browser) == [], size
    broken = browser.execute_script(
        "return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )
    assert broken == []


@pytest.mark.parametrize("page", PAGES[1:])
def test_code_plans_and_commands_are_monospaced_and_no_terminal_codes_show(browser, site: str, page: str) -> None:
    browser.get(site + page)
    fonts = browser.execute_script(
        "return [...document.querySelectorAll('main pre, main code')].map(e => getComputedStyle(e).fontFamily)"
    )
    assert fonts, f"{page} shows no code at all"
    proportional = sorted({f for f in fonts if "mono" not in f.lower()})
    assert proportional == [], f"{page}: code in {proportional}"
    text = browser.find_element(By.TAG_NAME, "main").text
    assert "\x1b[" not in text and "[0m" not in text and "[1;" not in text


def test_a_plan_shows_its_diff_and_the_commands_to_type_visibly(browser, site: str) -> None:
    browser.get(site + "01-postfix.html")
    diffs = browser.find_elements(By.CSS_SELECTOR, "main pre span[style*='background']")
    assert diffs and diffs[0].is_displayed()
    typed = browser.find_elements(By.CSS_SELECTOR, "main pre.by-hand")
    assert typed, "no plan says what to type by hand"
    first = typed[0]
    assert first.is_displayed() and first.size["height"] > 10
    assert "apt-get install postfix" in first.text
    assert any("postconf -e" in pre.text for pre in typed)


def test_the_dovecot_versions_side_by_side_keep_lines_whole(browser, site: str) -> None:
    browser.get(site + "02-dovecot.html")
    cells = browser.find_elements(By.CSS_SELECTOR, "main td pre")
    assert len(cells) >= 2
    wrapping = {c.value_of_css_property("white-space") for c in cells}
    assert wrapping == {"pre"}, "a configuration line broken in the middle is not the line Dovecot reads"


@pytest.mark.parametrize("page", PAGES)
def test_links_look_like_links_code_styled_names_too(browser, site: str, page: str) -> None:
    browser.get(site + page)
    looks = browser.execute_script(
        """
        return [...document.querySelectorAll('main a[href]:not(.anchor-link), nav a')].map(a => {
          const code = a.querySelector('code');
          const s = getComputedStyle(code || a);
          return [a.textContent.slice(0, 40), getComputedStyle(a).textDecorationLine, s.color];
        });
        """
    )
    assert looks, f"{page} links nowhere"
    plain = [(text, line, colour) for text, line, colour in looks if "underline" not in line]
    assert plain == []
    black = [(text, colour) for text, _, colour in looks if colour in ("rgb(0, 0, 0)", "rgb(31, 35, 40)")]
    assert black == [], "a link coloured as the text around it"


def test_check_tables_are_aligned_left(browser, site: str) -> None:
    browser.get(site + "01-postfix.html")
    aligned = browser.execute_script(
        "return [...document.querySelectorAll('main table td, main table th')].map(c => getComputedStyle(c).textAlign)"
    )
    assert len(aligned) > 50
    assert set(aligned) <= {"left", "start"}, sorted(set(aligned))


def test_the_search_finds_a_section_and_its_link_lands_on_it(browser, site: str) -> None:
    browser.get(site + "index.html")
    box = browser.find_element(By.CSS_SELECTOR, "input[type=search]")
    box.send_keys("postscreen")
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#search-results a"))
    results = browser.find_elements(By.CSS_SELECTOR, "#search-results a")
    target = next(a for a in results if "04-spam-inbound.html#" in a.get_attribute("href"))
    anchor = target.get_attribute("href").split("#", 1)[1]
    target.click()
    WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith("#" + anchor))
    top = browser.execute_script(f"return document.getElementById({anchor!r}).getBoundingClientRect().top")
    assert -2 <= top <= 60, "the link must land on its section"


def test_next_leads_through_every_chapter_in_order(browser, site: str) -> None:
    browser.get(site + "index.html")
    browser.find_element(By.CSS_SELECTOR, "main ol a").click()
    seen = [Path(browser.current_url).name]
    while nexts := browser.find_elements(By.CSS_SELECTOR, "nav a[rel=next]"):
        nexts[0].click()
        seen.append(Path(browser.current_url).name)
        assert len(seen) <= len(CHAPTERS)
    assert seen == PAGES[1:]
