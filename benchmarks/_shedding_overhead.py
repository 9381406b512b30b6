"""Load-shedder overhead on an unloaded call and request, beside the bulkhead.

Run: `.venv/bin/python benchmarks/shedding.py overhead [--calls 200000] [--rounds 7]`.

Every contender wraps a trivial coroutine (`async def noop(): return None`) and
is called `calls` times back to back in one coroutine, timed with
`time.perf_counter_ns` around the whole loop; nothing suspends, nothing is over
the limit (the unloaded case). Rounds alternate between contenders and the
median is shown; "added" is the contender minus the bare call measured in the
same run. The ASGI rows send `GET /` through a raw constant app, with and
without `LoadShedMiddleware` in front: what one HTTP request pays for the shedder.
"""

from __future__ import annotations

import math
import platform
from typing import TYPE_CHECKING, Any

from _harness import Message, TimedLoop, asgi_loop, call_loop, median_ns_per_call
from scalepy.bulkhead import Bulkhead
from scalepy.shedding import AIMD, Gradient, LoadShedder, LoadShedMiddleware

if TYPE_CHECKING:
    import argparse

TARGET_NS = 2_000  # the target: at most 2 us added to an unloaded request


async def noop() -> None:
    return None


async def constant(scope: Message, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


class Passthrough:
    """The floor of any pure ASGI middleware: one more `await` on the way in."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        """Check the scope type, as every middleware does, and call the app."""
        if scope["type"] != "http":
            raise RuntimeError("http only")
        await self.app(scope, receive, send)


def contenders() -> dict[str, TimedLoop]:
    """The bare call, the bulkhead, the shedder (both algorithms), and the ASGI pair."""
    gradient = LoadShedder("bench-gradient", limit=Gradient(max_limit=10_000))
    aimd = LoadShedder("bench-aimd", limit=AIMD(max_limit=10_000))
    bulkhead = Bulkhead("bench", max_concurrent=1_000, max_wait=math.inf)
    middleware = LoadShedMiddleware(constant, shedder=LoadShedder("bench-asgi"))
    return {
        "bare async call": call_loop(noop),
        "bulkhead": call_loop(bulkhead(noop)),
        "shedder, gradient": call_loop(gradient(noop)),
        "shedder, aimd": call_loop(aimd(noop)),
        "raw ASGI app": asgi_loop(constant, "/"),
        "raw ASGI app + passthrough middleware": asgi_loop(Passthrough(constant), "/"),
        "raw ASGI app + LoadShedMiddleware": asgi_loop(middleware, "/"),
    }


SHEDDER_ROWS = ("shedder, gradient", "shedder, aimd", "raw ASGI app + LoadShedMiddleware")
BASELINES = {
    "bulkhead": "bare async call",
    "shedder, gradient": "bare async call",
    "shedder, aimd": "bare async call",
    "raw ASGI app + passthrough middleware": "raw ASGI app",
    "raw ASGI app + LoadShedMiddleware": "raw ASGI app",
}


def add_options(parser: argparse.ArgumentParser) -> None:
    """The options of the overhead benchmark."""
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)


async def run(options: argparse.Namespace) -> None:
    """Measure every contender and print the table and the verdict."""
    medians = await median_ns_per_call(contenders(), options.calls, options.rounds)
    print(
        f"CPython {platform.python_version()}; medians of {options.rounds} rounds "
        f"of {options.calls:,} calls"
    )
    print(f"{'contender':<36} {'ns/call':>9} {'added ns':>9}")
    for name, value in medians.items():
        baseline = BASELINES.get(name)
        added = "" if baseline is None else f"{value - medians[baseline]:>9,.0f}"
        print(f"{name:<36} {value:>9,.0f} {added}")
    worst = max(medians[name] - medians[BASELINES[name]] for name in SHEDDER_ROWS)
    verdict = "met" if worst <= TARGET_NS else "NOT met"
    print(
        f"target: the shedder adds <= {TARGET_NS / 1000:.0f} us -> {worst / 1000:.2f} us, {verdict}"
    )
