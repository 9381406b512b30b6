"""Run the suite's mocha page in Debian's Chromium, driven by Playwright, and read its results.

Playwright launches `/usr/bin/chromium` (no browser download) headless, with the flags
this machine's closed network needs (no background connections to Google's hosts),
in a fresh profile. Requests to any host outside the loopback range go to a proxy
that does not exist, so they fail inside the browser (the page links an image on
GitHub): the suite talks only to the page's server and to the API. Not Playwright's
request routing: with routing on, Playwright answers CORS preflights itself, and the
preflights are what the API must get right.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypedDict, cast

from playwright.async_api import TimeoutError as PlaywrightTimeout
from playwright.async_api import async_playwright

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.async_api import ConsoleMessage

__all__ = ("CHROMIUM_ARGS", "Outcome", "SuiteRun", "SuiteUnfinished", "run_suite")

CHROMIUM_ARGS = (
    "--no-sandbox",  # as root (CI) Chromium refuses to start with its sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Loopback bypasses any proxy; everything else meets a closed port and fails.
    "--proxy-server=http://127.0.0.1:9",
)
"""Flags for a headless Chromium on a machine that reaches no host but its own."""

# mocha sets `stats.end` when the run is over; `runner` is setup.js's global.
_FINISHED = "() => window.runner !== undefined && window.runner.stats.end !== undefined"
# Every test of the tree, in order; a test a failed hook kept from running has no state.
_COLLECT = """() => {
  const outcomes = [];
  const walk = (suite) => {
    for (const test of suite.tests) {
      outcomes.push({
        title: test.fullTitle(),
        state: test.state || (test.pending ? "pending" : "not run"),
        error: test.err ? String(test.err.message || test.err) : null,
      });
    }
    suite.suites.forEach(walk);
  };
  walk(window.runner.suite);
  return {outcomes, failures: window.runner.stats.failures};
}"""


class SuiteUnfinished(Exception):
    """The page did not finish the suite in time; the message has what its console said."""


class _Outcome(TypedDict):
    title: str
    state: Literal["passed", "failed", "pending", "not run"]
    error: str | None


class _Collected(TypedDict):
    outcomes: list[_Outcome]
    failures: int


@dataclass(frozen=True)
class Outcome:
    """One spec of the suite and how it went."""

    title: str
    state: Literal["passed", "failed", "pending", "not run"]
    error: str | None


@dataclass(frozen=True)
class SuiteRun:
    """What the page reported: each spec, mocha's failure count (hooks included), the console."""

    outcomes: list[Outcome]
    failures: int
    console: list[str]

    @property
    def passed(self) -> int:
        """Specs that passed."""
        return sum(outcome.state == "passed" for outcome in self.outcomes)

    @property
    def failed(self) -> int:
        """Specs that failed or never ran (a failed hook skips the rest of its suite)."""
        return max(len(self.outcomes) - self.passed, self.failures)


async def run_suite(page_url: str, api_root: str, *, chromium: Path, within: float) -> SuiteRun:
    """Open the suite at `page_url` aimed at `api_root`; wait for its end (`within` seconds)."""
    console: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            page = await browser.new_page()
            page.on("console", lambda message: console.append(_describe(message)))
            page.on("pageerror", lambda error: console.append(f"page error: {error}"))
            await page.goto(f"{page_url}/index.html?{api_root}")
            try:
                await page.wait_for_function(_FINISHED, timeout=within * 1000)
            except PlaywrightTimeout:
                said = "\n".join(console) or "(nothing)"
                raise SuiteUnfinished(
                    f"the suite did not finish within {within:g} s; the console said:\n{said}"
                ) from None
            collected = cast("_Collected", await page.evaluate(_COLLECT))
        finally:
            await browser.close()
    outcomes = [Outcome(**outcome) for outcome in collected["outcomes"]]
    return SuiteRun(outcomes, collected["failures"], console)


def _describe(message: ConsoleMessage) -> str:
    return f"console.{message.type}: {message.text}"
