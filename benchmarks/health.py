"""Readiness-probe cost in-process, through the ASGI app: cached, uncached, and peers.

Run (services up, see scripts/services.sh):

    .venv/bin/python benchmarks/health.py [--calls 20000] [--rounds 5]
        [--url redis://127.0.0.1:6379/0]

Every contender answers `GET /health/ready` (or its own path) as an ASGI server
would call it: a fresh copy of a prepared scope, a `receive` returning the empty
body and a `send` that drops the messages. Calls run back to back in one
coroutine, timed with `time.perf_counter_ns` around the whole loop; rounds
alternate between contenders and the median is shown.

- raw ASGI constant: an app sending a constant 200 body, the floor of any probe.
- Starlette JSONResponse endpoint: a hand-written `{"status": "pass"}` route, what
  a service without scalepy typically exposes.
- scalepy readiness, cached: `health.asgi` with a Redis PING check whose passing
  result is cached (the state a probe meets almost always).
- scalepy readiness via Starlette routes: the same, through `health.routes()`.
- scalepy liveness: `health.asgi` on `/health/live`.
- scalepy readiness, uncached: the same check with `pass_ttl=0`, one real Redis
  round trip per probe: what the cache saves.

Like with like: "vs Starlette endpoint" compares each row with the hand-written
Starlette endpoint; the row to read beside it is scalepy's readiness through
Starlette routes (both pay Starlette's routing), while the bare ASGI rows compare
with the raw ASGI floor. A first, shorter round of every contender is discarded,
and each contender must answer 200 before it is timed.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
from importlib.metadata import version
from typing import Any

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from _harness import (
    Message,
    asgi_loop,
    figure_row,
    json_option,
    median_ns_per_call,
    print_table,
    write_result,
)
from _results import Metadata, Result
from scalepy.backends.redis import RedisClient
from scalepy.health import Health, redis_check

TARGET_NS = 100_000  # the target: a cached probe answers in < 100 us


async def constant(scope: Message, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b'{"status":"pass"}'})


async def status_endpoint(request: Any) -> JSONResponse:
    return JSONResponse({"status": "pass"})


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    json_option(parser)
    options = parser.parse_args()

    async with RedisClient.from_url(options.url) as redis:
        cached = Health([redis_check(redis)], pass_ttl=3600.0)
        uncached = Health([redis_check(redis)], pass_ttl=0.0, fail_ttl=0.0)
        for health in (cached, uncached):
            health.mark_started()
        starlette_health = Starlette(routes=cached.routes())
        hand_written = Starlette(routes=[Route("/healthz", status_endpoint)])

        loops = {
            "raw ASGI constant (floor)": asgi_loop(constant, "/"),
            "Starlette JSONResponse endpoint": asgi_loop(hand_written, "/healthz"),
            "scalepy readiness, cached": asgi_loop(cached.asgi, "/health/ready"),
            "scalepy readiness via Starlette routes": asgi_loop(starlette_health, "/health/ready"),
            "scalepy liveness": asgi_loop(cached.asgi, "/health/live"),
        }
        medians = await median_ns_per_call(loops, options.calls, options.rounds)
        uncached_calls = max(1, options.calls // 20)
        medians |= await median_ns_per_call(
            {"scalepy readiness, uncached (Redis PING)": asgi_loop(uncached.asgi, "/health/ready")},
            uncached_calls,
            options.rounds,
        )

    print(
        f"CPython {platform.python_version()}, starlette {version('starlette')}; "
        f"medians of {options.rounds} rounds of {options.calls:,} probes "
        f"({uncached_calls:,} uncached)"
    )
    floor = medians["raw ASGI constant (floor)"]
    starlette = medians["Starlette JSONResponse endpoint"]
    rows = [
        [name, f"{value:,.0f}", f"{value / 1000:.2f}", f"{value / floor:.1f}x"]
        for name, value in medians.items()
    ]
    for row, value in zip(rows, medians.values(), strict=True):
        row.append(f"{starlette / value:.2f}x")
    print_table(
        ["contender", "ns/probe", "us/probe", "vs floor", "Starlette endpoint / this"], rows
    )
    result = Result(
        benchmark="health",
        metadata=Metadata.collect(None, starlette=version("starlette")),
        rows=[
            figure_row(
                name,
                "readiness probe, in-process ASGI",
                1e9 / value,
                ratio=starlette / value,
                ratio_to="hand-written Starlette endpoint's time / this",
                more={"ns_per_call": value},
            )
            for name, value in medians.items()
        ],
        notes=[
            f"Medians of {options.rounds} rounds of {options.calls:,} probes after a "
            "discarded warm-up round; unpinned.",
            "Like with like: scalepy readiness via Starlette routes against the hand-written "
            "Starlette endpoint; the bare ASGI rows against the raw ASGI floor.",
        ],
    )
    best = medians["scalepy readiness, cached"]
    verdict = "met" if best < TARGET_NS else "NOT met"
    print(f"target: a cached probe < {TARGET_NS / 1000:.0f} us -> {best / 1000:.2f} us, {verdict}")
    write_result(result, options.json)


if __name__ == "__main__":
    asyncio.run(main())
