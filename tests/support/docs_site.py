"""The built docs site, checked page by page in Chromium as a reader's browser shows it.

Serves a built site (`mkdocs build`) on a local port and opens every HTML page in
Debian's Chromium, driven by Playwright (the flags of `todo_backend_spec.browser`).
A page passes when:

- it logs no console error and raises no uncaught exception;
- each of its mermaid diagrams was rendered to an SVG;
- every request it makes to the site succeeds (stylesheets, scripts, images);
- every `<a href>` and `<img src>` into the site names a file the site has, and a
  link's `#fragment` names an element of the target page; every image is decoded.

And the site publishes no file that is not a page, the theme's, the search index's or
linked or shown by a page (a configuration file left in `docs/`, say).

The machine reaches no host but its own, so requests that leave the site are
answered in the browser: mermaid's script, which mkdocs-material loads from a CDN, from a
local copy (`--mermaid`); anything else (web fonts) is refused, and the browser's
report of that failed load is not counted against the page. The home page's screenshot is written
where `--screenshot` says.

usage: python -m tests.support.docs_site SITE_DIR [--mermaid FILE] [--screenshot PNG] [--port N]
Prints each problem and a summary; exits 1 if any page has a problem.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import http.server
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, TypedDict, cast
from urllib.parse import unquote, urlsplit

from playwright.async_api import TimeoutError as PlaywrightTimeout
from playwright.async_api import async_playwright

from todo_backend_spec.browser import CHROMIUM_ARGS

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.async_api import BrowserContext, ConsoleMessage, Request, Response, Route

__all__ = ("Problem", "SiteReport", "check_site", "main", "serve")

MERMAID_URL = "https://unpkg.com/mermaid@"
"""Where mkdocs-material loads mermaid from (`mermaid@<major>/dist/mermaid.min.js`)."""
_TABS = 3  # pages open at once: more only queue for the CPU
# mkdocs-material draws each diagram into a closed shadow root; an open one lets the
# check see the SVG. Nothing else on the site uses shadow roots.
_OPEN_SHADOW_ROOTS = """
const attachShadow = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) {
  return attachShadow.call(this, { ...init, mode: "open" });
};
"""
_RENDERED_COUNT = """() => [...document.querySelectorAll("div.mermaid")]
  .filter((host) => host.shadowRoot?.querySelector("svg")).length"""
_RENDERED = f"(expected) => ({_RENDERED_COUNT})() >= expected"
_CONTENTS = """() => ({
  links: [...document.querySelectorAll("a[href]")].map((a) => a.href),
  images: [...document.querySelectorAll("img")].map((img) => ({
    src: img.currentSrc || img.src,
    decoded: img.complete && img.naturalWidth > 0,
  })),
  ids: [...document.querySelectorAll("[id], a[name]")].map((el) => el.id || el.name),
})"""
# How pymdownx.superfences writes a mermaid fence; counted in the built file, since the
# theme takes the class off while it fetches mermaid.
_DIAGRAM = '<pre class="mermaid">'


class _Image(TypedDict):
    src: str
    decoded: bool


class _Contents(TypedDict):
    links: list[str]
    images: list[_Image]
    ids: list[str]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one page."""

    page: str
    """The page's path on the site, e.g. `/cache/`."""
    what: str
    """What is wrong, for a person."""

    def __str__(self) -> str:
        return f"{self.page}: {self.what}"


@dataclass
class SiteReport:
    """What the check saw: the pages it opened and the problems it found."""

    pages: list[str] = field(default_factory=list)
    """The path of every page opened, in order."""
    problems: list[Problem] = field(default_factory=list)
    """Everything wrong, page by page."""
    diagrams: int = 0
    """Mermaid diagrams rendered, over all pages."""
    seconds: float = 0.0
    """How long the check took."""


@dataclass(frozen=True)
class _Page:
    path: str
    contents: _Contents
    console: list[str]
    diagrams: int


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per request would bury the problems the check prints


@contextlib.contextmanager
def serve(site: Path, port: int = 0) -> Iterator[str]:
    """Serve the files of `site` on 127.0.0.1:`port` (0: any free port); yields its origin."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            thread.join()


def page_paths(site: Path) -> list[str]:
    """The URL path of every HTML page of `site`, the home page first."""
    paths = []
    for file in sorted(site.rglob("*.html")):
        relative = file.relative_to(site).as_posix()
        paths.append("/" + relative.removesuffix("index.html"))
    return sorted(paths, key=lambda path: (path != "/", path))


async def check_site(
    site: Path,
    *,
    mermaid: Path | None = None,
    screenshot: Path | None = None,
    port: int = 0,
    chromium: Path = Path("/usr/bin/chromium"),
    diagram_timeout: float = 15.0,
) -> SiteReport:
    """Open every page of the built `site` in Chromium and report what is wrong.

    Args:
        site: The directory `mkdocs build` wrote.
        mermaid: A local `mermaid.min.js` served in place of the CDN's; without it,
            pages with diagrams report them unrendered.
        screenshot: Where to write a PNG of the whole home page; none if `None`.
        port: The local port to serve the site on; 0 for any free one.
        chromium: The browser to drive.
        diagram_timeout: Seconds a page's diagrams may take to render (mermaid's
            first load in a busy browser is slow).

    Returns:
        The pages opened and the problems found.
    """
    started = time.monotonic()
    report = SiteReport(pages=page_paths(site))
    seen: dict[str, _Page] = {}
    with serve(site, port) as origin:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=chromium, headless=True, args=list(CHROMIUM_ARGS)
            )
            try:
                context = await browser.new_context(viewport={"width": 1280, "height": 900})
                await context.add_init_script(_OPEN_SHADOW_ROOTS)
                # Only requests leaving the site pass through Python.
                await context.route(
                    lambda url: not url.startswith(origin),
                    functools.partial(_answer, mermaid),
                )
                waiting = list(reversed(report.pages))

                async def visit_pages() -> None:
                    while waiting:
                        path = waiting.pop()
                        shot = screenshot if path == "/" else None
                        diagrams = _file_of(site, path).read_text(encoding="utf-8").count(_DIAGRAM)
                        seen[path] = await _visit(
                            context, origin, path, diagrams, shot, diagram_timeout
                        )

                async with asyncio.TaskGroup() as group:
                    for _ in range(_TABS):
                        group.create_task(visit_pages())
            finally:
                await browser.close()
    for path in report.pages:
        visited = seen[path]
        report.diagrams += visited.diagrams
        report.problems.extend(Problem(path, line) for line in visited.console)
        report.problems.extend(_broken_targets(visited, origin, site, seen))
    report.problems.extend(_strays(site, origin, seen))
    report.seconds = time.monotonic() - started
    return report


async def _answer(mermaid: Path | None, route: Route) -> None:
    url = route.request.url
    if mermaid is not None and url.startswith(MERMAID_URL) and url.endswith("/mermaid.min.js"):
        await route.fulfill(path=mermaid, content_type="text/javascript")
    else:
        await route.abort("blockedbyclient")


async def _visit(
    context: BrowserContext,
    origin: str,
    path: str,
    expected: int,
    screenshot: Path | None,
    render_within: float,
) -> _Page:
    console: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # Failed loads: the site's are reported below with their address, and the
        # others are the requests this check refuses (web fonts).
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            console.append(f"console error: {message.text}")

    def on_response(response: Response) -> None:
        if response.url.startswith(origin) and response.status >= 400:
            console.append(f"{response.status} for {response.url.removeprefix(origin)}")

    def on_failed(request: Request) -> None:
        # ERR_ABORTED: the page was closed before this request (a favicon) ended.
        if request.url.startswith(origin) and request.failure != "net::ERR_ABORTED":
            console.append(f"request failed: {request.url.removeprefix(origin)}")

    page = await context.new_page()
    page.on("console", on_console)
    page.on("pageerror", lambda error: console.append(f"uncaught exception: {error}"))
    page.on("response", on_response)
    page.on("requestfailed", on_failed)
    try:
        await page.goto(origin + path, wait_until="load")
        if expected:
            try:
                await page.wait_for_function(_RENDERED, arg=expected, timeout=render_within * 1000)
            except PlaywrightTimeout:
                console.append(
                    f"{await page.evaluate(_RENDERED_COUNT)} of {expected} mermaid diagrams "
                    f"rendered to SVG within {render_within:g} s"
                )
        contents = cast("_Contents", await page.evaluate(_CONTENTS))
        diagrams = await page.evaluate(_RENDERED_COUNT)
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=screenshot, full_page=True)
    finally:
        await page.close()
    return _Page(path, contents, console, diagrams)


def _broken_targets(
    visited: _Page, origin: str, site: Path, seen: dict[str, _Page]
) -> Iterator[Problem]:
    for image in visited.contents["images"]:
        if image["src"].startswith(origin) and not image["decoded"]:
            yield Problem(visited.path, f"image not shown: {image['src'].removeprefix(origin)}")
    for link in sorted(set(visited.contents["links"])):
        if not link.startswith(origin + "/"):
            continue  # another site: not checked offline
        parts = urlsplit(link)
        target = unquote(parts.path)
        if not _exists(site, target):
            yield Problem(visited.path, f"broken link: {link.removeprefix(origin)}")
        elif parts.fragment and target in seen and not _has_id(seen[target], parts.fragment):
            yield Problem(visited.path, f"no such anchor: {link.removeprefix(origin)}")


_BUILT = frozenset(("sitemap.xml", "sitemap.xml.gz", "objects.inv"))  # mkdocs', mkdocstrings'


def _strays(site: Path, origin: str, seen: dict[str, _Page]) -> Iterator[Problem]:
    used = {
        unquote(urlsplit(url).path)
        for page in seen.values()
        for url in (*page.contents["links"], *(image["src"] for image in page.contents["images"]))
        if url.startswith(origin + "/")
    }
    for file in sorted(site.rglob("*")):
        relative = file.relative_to(site)
        path = "/" + relative.as_posix()
        if (
            file.is_file()
            and file.suffix != ".html"
            and relative.parts[0] not in ("assets", "search")
            and relative.as_posix() not in _BUILT
            and path not in used
        ):
            yield Problem(path, "published, but no page links to it or shows it")


def _has_id(page: _Page, fragment: str) -> bool:
    return unquote(fragment) in page.contents["ids"]


def _exists(site: Path, url_path: str) -> bool:
    relative = PurePosixPath(url_path.lstrip("/"))
    return ".." not in relative.parts and _file_of(site, url_path).is_file()


def _file_of(site: Path, url_path: str) -> Path:
    """The file a static server sends for `url_path`: a directory's `index.html`."""
    file = site.joinpath(*PurePosixPath(url_path.lstrip("/")).parts)
    return file / "index.html" if file.is_dir() else file


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The options of the module's docstring."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.docs_site", description=__doc__)
    parser.add_argument("site", type=Path, help="the directory mkdocs build wrote")
    parser.add_argument("--mermaid", type=Path, help="a local mermaid.min.js")
    parser.add_argument("--screenshot", type=Path, help="where to write the home page's PNG")
    parser.add_argument("--port", type=int, default=0, help="local port (default: any free)")
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Check the site; 0 only if no page has a problem."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    report = asyncio.run(
        check_site(
            args.site,
            mermaid=args.mermaid,
            screenshot=args.screenshot,
            port=args.port,
            chromium=args.chromium,
        )
    )
    for problem in report.problems:
        print(problem)
    failed = {problem.page for problem in report.problems}
    print(
        f"docs site: {len(report.pages)} pages, {report.diagrams} diagrams rendered, "
        f"{len(report.problems)} problems in {report.seconds:.1f} s"
    )
    print(f"{len(report.pages) - len(failed)} passed, {len(failed)} failed")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
