"""Load shedding in the Todo API: after the rate limits, probes and `/metrics` never shed."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING

import pytest

from scalepy.shedding import LoadShedder, LoadShedMiddleware
from todo.app import create_app

if TYPE_CHECKING:
    import httpx
    from starlette.applications import Starlette

    from scalepy.shedding import Permit
    from todo.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test settings with the shedder on (`TODO_SHEDDING` is off by default)."""
    return dataclasses.replace(settings, shedding=True)


async def fill(shedder: LoadShedder) -> list[Permit]:
    """Take every slot of `shedder`, as many requests in progress would."""
    permits = [shedder.slot() for _ in range(int(shedder.limit))]
    for permit in permits:
        await permit.__aenter__()
    return permits


async def test_requests_wait_for_a_slot_while_probes_and_metrics_pass(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    """With every slot taken, a read waits in line and is served when one frees up.

    Meanwhile readiness and `/metrics` answer at once: they never count against the limit.
    """
    shedder = app.state.services.shedder
    assert isinstance(shedder, LoadShedder)
    permits = await fill(shedder)
    read = asyncio.create_task(client.get("/todos"))
    while shedder.statistics().queued == 0:  # noqa: ASYNC110 - the request crosses httpx first
        await asyncio.sleep(0.001)
    assert 200 == (await client.get("/health/ready")).status_code
    metrics = await client.get("/metrics")
    assert 'scalepy_shedding_request_queued{scalepy_shedding_name="http"} 1.0' in metrics.text
    await permits[0].__aexit__(None, None, None)
    assert 200 == (await read).status_code
    for permit in permits[1:]:
        await permit.__aexit__(None, None, None)
    assert 0 == shedder.statistics().in_flight


def test_the_shedder_sits_after_the_rate_limit(settings: Settings) -> None:
    """The rate limit comes first, so abusers are refused before they take a slot."""
    app = create_app(settings)
    kinds = [middleware.cls.__name__ for middleware in app.user_middleware]  # type: ignore[attr-defined]
    assert ["RateLimitMiddleware", "LoadShedMiddleware"] == kinds[-2:]


def test_todo_shedding_off_builds_no_shedder(settings: Settings) -> None:
    """`TODO_SHEDDING=false` leaves the middleware and the shedder out."""
    app = create_app(dataclasses.replace(settings, shedding=False))
    assert app.state.services.shedder is None
    kinds = [middleware.cls.__name__ for middleware in app.user_middleware]  # type: ignore[attr-defined]
    assert LoadShedMiddleware.__name__ not in kinds
