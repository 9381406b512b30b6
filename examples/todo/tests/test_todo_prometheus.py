"""A real Prometheus scrapes the demo stack and fires TodoBreakerOpen when PostgreSQL goes.

The stack of `scripts/demo.sh` (two replicas behind nginx, the worker, PostgreSQL behind
the demo's relay) runs with Prometheus (the Debian package) scraping every process each
second and evaluating the shipped `deploy/observability/alerts.yml`. Cutting the relay
makes the reads fail until the breaker opens; the test polls Prometheus's alerts API,
with a deadline, until TodoBreakerOpen is firing, restores PostgreSQL, and polls again
until the alert is gone. About 30 s: stack 5 s, the alert's `for: 10s` plus scrapes,
the breaker's 2 s open period before its trial call.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from demo.prometheus import Prometheus
from demo.stack import Options, Stack

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

_ALERT = "TodoBreakerOpen"
_DEADLINE = 40.0


@pytest.fixture
async def observed() -> AsyncIterator[Prometheus]:
    """The demo stack with Prometheus scraping it; everything stopped afterwards."""
    stack = Stack(Options(replicas=2, port=0), say=lambda line: None)
    try:
        await stack.start()
        prometheus = Prometheus(stack)
        await prometheus.start()
        yield prometheus
    finally:
        await stack.stop()


async def _until(
    check: Callable[[], Awaitable[bool]], what: str, *, step: Callable[[], Awaitable[object]]
) -> float:
    """Run `step` and poll `check` until true; return the seconds it took.

    Prometheus is another process: there is no event to await, only its API to ask.
    """
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < _DEADLINE, f"not {what} within {_DEADLINE:g} s"
        await step()
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def test_breaker_open_alert_fires_on_a_postgres_outage_and_resolves(
    observed: Prometheus,
) -> None:
    """Cut PostgreSQL: TodoBreakerOpen fires for the postgres breaker; restore it: it resolves."""
    stack = observed.stack
    assert stack.relay is not None
    health = await observed.target_health()  # start() waited for the first scrapes
    assert {"app-1": "up", "app-2": "up", "worker": "up"} == health
    assert [] == await observed.firing(_ALERT)
    missing = itertools.count(10_000_000)  # ids no todo has: every read reaches PostgreSQL
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10.0) as client:

        async def read() -> int:
            return (await client.get(f"/todos/{next(missing)}")).status_code

        async def firing() -> bool:
            return bool(await observed.firing(_ALERT))

        async def resolved() -> bool:
            return not [a for a in await observed.alerts() if a["labels"]["alertname"] == _ALERT]

        stack.relay.cut()
        try:
            fired_after = await _until(firing, f"{_ALERT} firing", step=read)
            alerts = await observed.firing(_ALERT)
            assert {("postgres", "todo-app", "page")} == {
                (a["labels"]["scalepy_breaker_name"], a["labels"]["job"], a["labels"]["severity"])
                for a in alerts
            }
            assert 503 == await read()
        finally:
            stack.relay.restore()
        # Reads after the open period are the breakers' trial calls: they close them.
        resolved_after = await _until(resolved, f"{_ALERT} resolved", step=read)
        assert 404 == await read()
    print(
        f"{_ALERT} firing {fired_after:.1f} s after the cut, resolved {resolved_after:.1f} s after"
    )
