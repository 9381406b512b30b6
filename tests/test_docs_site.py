"""tests.support.docs_site: the check scripts/check_site.sh runs on the built docs site.

The real site is checked in CI (scripts/test.sh, after the strict build); these tests
prove on a small site of known faults that the check sees each kind of fault it
claims to, in Chromium, and passes a page that has none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.support.docs_site import Problem, check_site, page_paths

if TYPE_CHECKING:
    from pathlib import Path

_FAULTY = """<!doctype html>
<html><head><title>home</title><link rel="icon" href="data:,"></head><body>
<h1 id="top">Home</h1>
<a href="clean/">a page</a>
<a href="clean/#present">an anchor</a>
<a href="clean/#absent">a missing anchor</a>
<a href="gone/">a missing page</a>
<a href="https://example.org/">another site</a>
<a href="#top">this page</a>
<img src="missing.png" alt="">
<pre class="mermaid"><code>flowchart LR
  a --> b</code></pre>
<script>console.error("boom")</script>
</body></html>
"""
_CLEAN = """<!doctype html>
<html><head><title>clean</title><link rel="icon" href="data:,"></head><body>
<h1 id="present">Clean</h1><a href="../">home</a>
</body></html>
"""


def _site(root: Path) -> Path:
    site = root / "site"
    (site / "clean").mkdir(parents=True)
    (site / "index.html").write_text(_FAULTY, encoding="utf-8")
    (site / "clean" / "index.html").write_text(_CLEAN, encoding="utf-8")
    (site / "ruff.toml").write_text("line-length = 100\n", encoding="utf-8")
    return site


def test_pages_are_every_html_file_home_first(tmp_path: Path) -> None:
    """Every HTML file is a page, named by its URL path, and the home page comes first."""
    site = _site(tmp_path)
    (site / "404.html").write_text(_CLEAN, encoding="utf-8")
    assert ["/", "/404.html", "/clean/"] == page_paths(site)


async def test_each_fault_is_reported_and_a_clean_page_passes(tmp_path: Path) -> None:
    """Each fault is reported against its page; the clean page has none.

    A broken link, a missing anchor, a missing image, a console error, a diagram left
    unrendered, and a file no page uses; links to other sites are not followed; the
    home page's screenshot is written.
    """
    shot = tmp_path / "shots" / "home.png"
    report = await check_site(_site(tmp_path), screenshot=shot, diagram_timeout=1.0)
    assert ["/", "/clean/"] == report.pages
    assert {
        Problem("/", "console error: boom"),
        Problem("/", "404 for /missing.png"),
        Problem("/", "0 of 1 mermaid diagrams rendered to SVG within 1 s"),
        Problem("/", "image not shown: /missing.png"),
        Problem("/", "broken link: /gone/"),
        Problem("/", "no such anchor: /clean/#absent"),
        Problem("/ruff.toml", "published, but no page links to it or shows it"),
    } == set(report.problems)
    assert b"\x89PNG" == shot.read_bytes()[:4]
