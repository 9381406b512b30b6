"""The load-shedding benchmark's app: a handler costing CPU and a dependency call, under uvicorn.

    SHED=1 TOLERANCE=1.5 CPU_MS=10 DB_SLOTS=4 DB_MS=8 uvicorn --factory _shedding_app:create_app

- `GET /work`: burns `CPU_MS` of CPU (the event loop is blocked, as by real work:
  parsing, rendering), then holds one of `DB_SLOTS` dependency connections for
  `DB_MS` (an `asyncio.sleep`: I/O). Capacity is the smaller of `1000 / CPU_MS`
  per second (one core) and `DB_SLOTS * 1000 / DB_MS`.
- `GET /health/ready`: a probe, answered at once.
- `POST /control/db_ms?<ms>`: makes the dependency slower or faster from now on.
- `GET /control/stats`: the shedder's limit, in-flight and queued calls as JSON.

With `SHED=1` the app sits behind `LoadShedMiddleware` (defaults but a gradient
limit starting at 1 with `TOLERANCE`, `/control` never shed besides probes); with
`SHED=0` it takes every request as it comes.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import TYPE_CHECKING, Any

from scalepy.shedding import Gradient, LoadShedder, LoadShedMiddleware

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    Message = MutableMapping[str, Any]
    ASGI = Callable[
        [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
        Awaitable[None],
    ]


class WorkApp:
    """The raw ASGI app (no framework: its own cost stays out of the figures)."""

    def __init__(self, cpu_ms: float, db_slots: int, db_ms: float) -> None:
        self.cpu = cpu_ms / 1000
        self.db = asyncio.Semaphore(db_slots)
        self.db_seconds = db_ms / 1000
        self.shedder: LoadShedder | None = None

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        """Route by path: work, probe, control."""
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/work":
            deadline = time.perf_counter() + self.cpu
            while time.perf_counter() < deadline:
                pass
            async with self.db:
                await asyncio.sleep(self.db_seconds)
            await _answer(send, 200, b"ok")
        elif path == "/health/ready":
            await _answer(send, 200, b"ready")
        elif path == "/control/db_ms" and scope["method"] == "POST":
            self.db_seconds = float(scope["query_string"]) / 1000
            await _answer(send, 200, b"ok")
        elif path == "/control/stats":
            await _answer(send, 200, json.dumps(self.stats()).encode())
        else:
            await _answer(send, 404, b"not found")

    def stats(self) -> dict[str, float]:
        """The shedder's limit, in-flight and queued calls (zeros without one)."""
        if self.shedder is None:
            return {"limit": 0.0, "in_flight": 0.0, "queued": 0.0}
        stats = self.shedder.statistics()
        return {"limit": stats.limit, "in_flight": stats.in_flight, "queued": stats.queued}


async def _answer(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app() -> ASGI:
    """The app as the environment describes it (see the module docstring)."""
    app = WorkApp(
        cpu_ms=float(os.environ.get("CPU_MS", "10")),
        db_slots=int(os.environ.get("DB_SLOTS", "4")),
        db_ms=float(os.environ.get("DB_MS", "8")),
    )
    if os.environ.get("SHED", "1") != "1":
        return app
    # It starts under full load: after the first probe (one call at a time), the limit
    # grows from one call rather than shrinking from 20 through queued samples.
    tolerance = float(os.environ.get("TOLERANCE", "1.5"))
    app.shedder = LoadShedder("bench", limit=Gradient(initial_limit=1, tolerance=tolerance))
    return LoadShedMiddleware(app, shedder=app.shedder, never_shed=["/health", "/control"])
