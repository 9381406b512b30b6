"""What `RateLimitMiddleware` costs per request, in-process, on `memory://` and on Redis.

Run (services up, see scripts/services.sh):

    .venv/bin/python benchmarks/ratelimit_asgi.py [--url redis://127.0.0.1:6379/0]
        [--calls 20000] [--rounds 5] [--tasks 1 50]

Every contender answers `GET /todos/1` with a small JSON body from a Starlette
route, called as an ASGI server would (see `_harness.asgi_loop`), by `--tasks`
concurrent callers from one client address: one key, as every request of a load
generator on one host is. Every policy allows every request (limits far above the
load). No server, no socket: the figures are the middleware's own cost, which
issue 16's end-to-end runs add to uvicorn's.

- bare route: the Starlette route alone (the ceiling);
- + limiter: one token bucket, no metrics (the limiter and middleware alone);
- + limiter, metrics: the same with Prometheus and OpenTelemetry (API only)
  instrumentation, as the Todo API has them;
- Todo API: the Todo API's rate limits with metrics: one middleware, a bucket for
  every request and one more for writes (`methods=`), so this `GET` is decided
  under the first alone;
- two layers: the wiring the Todo API had before `methods=`, kept to compare: two
  middlewares, the second's key function exempting this `GET`.
- leased: the same limiter with a `Lease` (defaults): the one hot key is decided
  from batches of tokens taken from Redis, most requests without a round trip.

"CPU us" is the process's CPU time per request: on Redis the wall time also holds
the round trip, while the CPU time is what a saturated server pays. "calls" is
the number of Python function calls per request (cProfile), which the load of a
shared machine does not blur as it does times.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import platform
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

from _harness import ASGIApp, empty_body, forget_keys, http_scope, print_table, status_recorder
from scalepy.integrations.opentelemetry import OpenTelemetryInstrumentation
from scalepy.integrations.prometheus import PrometheusInstrumentation
from scalepy.ratelimit import EXEMPT, Exempt, Lease, RateLimiter, TokenBucket
from scalepy.ratelimit.asgi import RateLimitMiddleware, client_ip
from scalepy.telemetry import NoopInstrumentation, combine

if TYPE_CHECKING:
    from starlette.requests import Request

    from scalepy.ratelimit import KeyFunc
    from scalepy.telemetry import Instrumentation

HUGE = 1_000_000_000  # requests per second: never limited during the run
SCOPE = http_scope("/todos/1", [(b"user-agent", b"wrk")])
Run = Callable[[int], Awaitable[tuple[float, float]]]
"""Sends `calls` requests; returns wall and CPU nanoseconds per request."""


async def todo(request: Request) -> JSONResponse:
    return JSONResponse({"id": 1, "title": "write the benchmark", "completed": False})


def route(*middleware: Middleware) -> Starlette:
    return Starlette(routes=[Route("/todos/{id:int}", todo)], middleware=list(middleware))


def bucket(name: str) -> TokenBucket:
    return TokenBucket(capacity=HUGE, refill_rate=float(HUGE), name=name)


def writes_only(key: KeyFunc) -> KeyFunc:
    """The Todo API's key of its writes policy: `EXEMPT` for a `GET`."""

    def writes(scope: Mapping[str, Any]) -> str | Exempt | None:
        return EXEMPT if scope.get("method") in {"GET", "HEAD", "OPTIONS"} else key(scope)

    return writes


def limited(limiter: RateLimiter) -> Starlette:
    return route(Middleware(RateLimitMiddleware, limiter=limiter, policy=bucket("requests")))


def todo_limits(limiter: RateLimiter) -> Starlette:
    """The route behind the Todo API's rate limits: one middleware, writes by method."""
    return route(
        Middleware(
            RateLimitMiddleware,
            limiter=limiter,
            policy=bucket("requests"),
            methods=dict.fromkeys(("POST", "PUT", "PATCH", "DELETE"), bucket("writes")),
            key=client_ip(),
            exempt=["/health", "/metrics"],
        )
    )


def two_layers(limiter: RateLimiter) -> Starlette:
    """The route behind the two middlewares the Todo API had before `methods=`."""
    return route(
        Middleware(
            RateLimitMiddleware,
            limiter=limiter,
            policy=bucket("requests"),
            key=client_ip(),
            exempt=["/health", "/metrics"],
        ),
        Middleware(
            RateLimitMiddleware,
            limiter=limiter,
            policy=bucket("writes"),
            key=writes_only(client_ip(prefix="w:")),
            exempt=["/health", "/metrics"],
        ),
    )


def metrics() -> Instrumentation:
    """Prometheus on a registry of its own, and OpenTelemetry's API, as the Todo API has."""
    return combine(
        PrometheusInstrumentation(registry=CollectorRegistry()), OpenTelemetryInstrumentation()
    )


def concurrent_loop(app: ASGIApp, tasks: int) -> Run:
    """`tasks` callers sending `GET /todos/1` through `app` back to back; checks for 200."""
    statuses: list[int] = []
    record = status_recorder(statuses)

    async def caller(calls: int) -> None:
        for _ in range(calls):
            await app(dict(SCOPE), empty_body, record)

    async def run(calls: int) -> tuple[float, float]:
        share = max(1, calls // tasks)
        statuses.clear()
        gc.collect()
        wall, cpu = time.perf_counter_ns(), time.process_time_ns()
        await asyncio.gather(*(caller(share) for _ in range(tasks)))
        cpu, wall = time.process_time_ns() - cpu, time.perf_counter_ns() - wall
        assert set(statuses) == {200}, f"statuses: {set(statuses)}"
        return wall / (share * tasks), cpu / (share * tasks)

    return run


async def calls_per_request(run: Run, calls: int) -> float:
    """Python function calls per request: a count the machine's load cannot blur."""
    profile = cProfile.Profile()
    profile.enable()
    await run(calls)
    profile.disable()
    return sum(entry.callcount for entry in profile.getstats()) / calls


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, nargs="+", default=[1, 50])
    options = parser.parse_args()
    namespace = f"bench-{uuid.uuid4().hex[:8]}"

    limiters = {
        "memory": RateLimiter("memory://", instrumentation=NoopInstrumentation()),
        "memory, metrics": RateLimiter("memory://", instrumentation=metrics()),
        "Redis": RateLimiter(
            options.url, namespace=namespace, timeout=1.0, instrumentation=NoopInstrumentation()
        ),
        "Redis, metrics": RateLimiter(
            options.url, namespace=namespace, timeout=1.0, instrumentation=metrics()
        ),
        "Redis, metrics, leased": RateLimiter(
            options.url,
            namespace=namespace,
            timeout=1.0,
            instrumentation=metrics(),
            lease=Lease(),
        ),
    }
    contenders = {
        "bare route (ceiling)": route(),
        **{f"+ limiter, {name}": limited(limiter) for name, limiter in limiters.items()},
        "Todo API, memory": todo_limits(limiters["memory, metrics"]),
        "Todo API, Redis": todo_limits(limiters["Redis, metrics"]),
        "Todo API, Redis, leased": todo_limits(limiters["Redis, metrics, leased"]),
        "two layers (before), Redis, leased": two_layers(limiters["Redis, metrics, leased"]),
    }
    print(
        f"CPython {platform.python_version()}, starlette {version('starlette')}; medians of "
        f"{options.rounds} rounds of {options.calls:,} requests, in-process, rounds alternating"
    )
    try:
        for tasks in options.tasks:
            await measure(contenders, tasks, options.calls, options.rounds)
    finally:
        for limiter in limiters.values():
            await limiter.aclose()
        await forget_keys(options.url, f"*{namespace}*")


async def measure(contenders: dict[str, Starlette], tasks: int, calls: int, rounds: int) -> None:
    """Print each contender's median wall and CPU time per request, and its calls."""
    runs = {name: concurrent_loop(app, tasks) for name, app in contenders.items()}
    for run in runs.values():  # warm-up, discarded
        await run(max(tasks, calls // 10))
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            samples[name].append(await run(calls))
    walls = {
        name: statistics.median(wall for wall, _ in values) for name, values in samples.items()
    }
    cpus = {name: statistics.median(cpu for _, cpu in values) for name, values in samples.items()}
    counts = {name: await calls_per_request(run, max(tasks, 1000)) for name, run in runs.items()}
    bare_cpu, bare_calls = cpus["bare route (ceiling)"], counts["bare route (ceiling)"]
    rows = [
        [
            name,
            f"{walls[name] / 1000:.2f}",
            f"{cpus[name] / 1000:.2f}",
            f"{(cpus[name] - bare_cpu) / 1000:.2f}",
            f"{bare_cpu / cpus[name]:.0%}",
            f"{counts[name]:.0f}",
            f"{counts[name] - bare_calls:.0f}",
        ]
        for name in runs
    ]
    print(f"\n{tasks} concurrent caller(s):")
    headers = ["contender", "wall us", "CPU us", "added CPU us", "vs bare", "calls", "added calls"]
    print_table(headers, rows)


if __name__ == "__main__":
    asyncio.run(main())
