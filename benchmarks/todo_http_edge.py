"""What the Todo API's HTTP edge (todo.http middleware) costs per request, in-process.

Run:

    .venv/bin/python benchmarks/todo_http_edge.py [--calls 20000] [--rounds 5]

Every contender answers `GET /todos/1` with a small JSON body from a Starlette
route, called as an ASGI server would (see `_harness.asgi_loop`) with an `Origin`
and an `X-Request-ID` header, as a browser behind nginx sends them. No server, no
socket: the figures are the middleware's own cost, which issue 16's end-to-end
runs add to uvicorn's. The last column counts Python function calls per request
(cProfile), which the load of a shared machine does not blur as it does times.

- bare route: the Starlette route alone (the ceiling);
- + one middleware: each piece alone in front of the route;
- edge stack: request id, security headers, CORS (`*`), the 500 handler and the
  body limit, stacked in this order, with the problem handlers installed;
- `EdgeMiddleware`: the same five as one middleware (what `create_app()` runs).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import platform
from importlib.metadata import version
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

from _harness import TimedLoop, asgi_loop, median_ns_per_call
from todo.http import (
    BodySizeLimitMiddleware,
    EdgeMiddleware,
    RequestIdMiddleware,
    SecurityHeadersMiddleware,
    UnhandledErrorMiddleware,
    cors_middleware,
    problem_handlers,
)

if TYPE_CHECKING:
    from starlette.requests import Request

HEADERS = [(b"origin", b"https://todobackend.com"), (b"x-request-id", b"0123456789abcdef")]


async def todo(request: Request) -> JSONResponse:
    return JSONResponse({"id": 1, "title": "write the benchmark", "completed": False})


async def calls_per_request(loop: TimedLoop) -> float:
    """Python function calls per request: a count the machine's load cannot blur."""
    profile = cProfile.Profile()
    profile.enable()
    await loop(1000)
    profile.disable()
    return sum(entry.callcount for entry in profile.getstats()) / 1000


def app(*middleware: Middleware | None) -> Starlette:
    """The route behind `middleware` (outermost first) and the problem handlers."""
    return Starlette(
        routes=[Route("/todos/{id:int}", todo)],
        middleware=[piece for piece in middleware if piece is not None],
        exception_handlers=problem_handlers(),
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()

    pieces = {
        "request id": Middleware(RequestIdMiddleware),
        "security headers": Middleware(SecurityHeadersMiddleware),
        "CORS (*)": cors_middleware(["*"]),
        "500 handler": Middleware(UnhandledErrorMiddleware),
        "body limit": Middleware(BodySizeLimitMiddleware, max_bytes=64 * 1024),
    }
    contenders = {
        "bare route (ceiling)": app(),
        **{f"+ {name}": app(piece) for name, piece in pieces.items()},
        "edge stack (all five)": app(*pieces.values()),
        "EdgeMiddleware (the five)": app(
            Middleware(EdgeMiddleware, max_body_bytes=64 * 1024, cors_origins=["*"])
        ),
    }
    loops = {name: asgi_loop(target, "/todos/1", HEADERS) for name, target in contenders.items()}
    medians = await median_ns_per_call(loops, options.calls, options.rounds)
    calls = {name: await calls_per_request(loop) for name, loop in loops.items()}

    print(
        f"CPython {platform.python_version()}, starlette {version('starlette')}; "
        f"medians of {options.rounds} rounds of {options.calls:,} requests, in-process"
    )
    bare = medians["bare route (ceiling)"]
    print(
        f"{'contender':<26} {'us/request':>10} {'added us':>9} {'req/s':>9} {'vs bare':>8} "
        f"{'calls':>6}"
    )
    for name, value in medians.items():
        print(
            f"{name:<26} {value / 1000:>10.2f} {(value - bare) / 1000:>9.2f} "
            f"{1e9 / value:>9,.0f} {bare / value:>7.0%} {calls[name]:>6.0f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
