"""The service around the routes: health, metrics, rate limits, CORS, headers, memory mode."""

from __future__ import annotations

import dataclasses
import gc
import re
from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest
from todo_support import assert_problem, eventually, write_headers

from todo.app import create_app
from todo.settings import Rate

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from starlette.applications import Starlette
    from starlette.types import Receive, Scope, Send

    from todo.settings import Settings


async def serve(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """Run `app`'s lifespan around a client calling it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


@pytest.mark.parametrize("path", ["/health/live", "/health/ready", "/health/startup"])
async def test_the_probes_pass(client: httpx.AsyncClient, path: str) -> None:
    """Liveness, readiness (PostgreSQL and Redis checked) and startup answer 200 health+json."""
    response = await client.get(path)
    assert (200, "application/health+json") == (
        response.status_code,
        response.headers["content-type"],
    )
    assert "pass" == response.json()["status"]


async def test_metrics_show_the_primitives_at_work(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """`/metrics` is the Prometheus text of the app's registry: cache, breaker, limiter."""
    created = await client.post("/todos", json={"title": "m"}, headers=write_headers(settings))
    for _ in range(2):  # a miss, then a hit from the L1
        await client.get(created.json()["url"])
    text = (await client.get("/metrics")).text
    for name in (
        f'scalepy_cache_requests_total{{scalepy_cache_name="{settings.namespace}",'
        'scalepy_cache_result="hit",scalepy_cache_tier="l1"}',
        'scalepy_breaker_calls_total{scalepy_breaker_call_outcome="success",'
        'scalepy_breaker_name="postgres"}',
        'scalepy_ratelimit_decisions_total{scalepy_ratelimit_result="allowed"}',
    ):
        assert name in text


async def test_a_write_returns_its_connection_without_a_reset_round_trip(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """A write holds its pooled connection for its one statement: no reset query follows it."""
    created = await client.post("/todos", json={"title": "r"}, headers=write_headers(settings))
    assert 201 == created.status_code
    connection = await asyncpg.connect(settings.database_url)
    try:
        # An idle backend shows the last statement it ran.
        last = await connection.fetch(
            "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'todo' AND state = 'idle'"
        )
    finally:
        await connection.close()
    writes = [row["query"] for row in last if "INSERT INTO todos" in row["query"]]
    resets = [row["query"] for row in last if "RESET ALL" in row["query"]]
    assert (1, []) == (len(writes), resets)


async def test_writes_have_a_stricter_rate_limit(settings: Settings) -> None:
    """Two writes a minute per client: the third is 429, with Retry-After and IETF headers.

    Writes are decided under both policies at once: a write refused by its own takes
    nothing from the requests quota. Reads have their own quota, and health and
    metrics are never limited.
    """
    limited = dataclasses.replace(
        settings, rate_limit=Rate(limit=5, period=60.0), write_rate_limit=Rate(limit=2, period=60.0)
    )
    async for client in serve(create_app(limited)):
        headers = write_headers(settings)
        for _ in range(2):
            assert (
                201
                == (await client.post("/todos", json={"title": "t"}, headers=headers)).status_code
            )
        response = await client.post("/todos", json={"title": "t"}, headers=headers)
        assert_problem(response, 429)
        assert 1 <= int(response.headers["retry-after"]) <= 30
        assert '"requests";q=5;w=60, "writes";q=2;w=60' == response.headers["ratelimit-policy"]
        # r: what is left; t: seconds until restored, counting down in real time.
        assert re.fullmatch(
            r'"requests";r=3;t=\d+, "writes";r=0;t=\d+', response.headers["ratelimit"]
        )
        read = await client.get("/todos")
        assert 2 == len(read.json())  # reads: their own quota
        assert '"requests";q=5;w=60' == read.headers["ratelimit-policy"]
        for _ in range(10):
            assert 200 == (await client.get("/health/live")).status_code
            assert 200 == (await client.get("/metrics")).status_code
        # 2 POSTs and a GET took 3 of the 5 requests a minute: two more, then 429.
        for _ in range(2):
            assert 200 == (await client.get("/todos")).status_code
        assert_problem(await client.get("/todos"), 429)


async def test_the_drain_needs_the_token_when_one_is_set(settings: Settings) -> None:
    """With TODO_DRAIN_TOKEN, a drain without it is refused and readiness stays up."""
    guarded = dataclasses.replace(settings, drain_token="let-me-drain")
    async for client in serve(create_app(guarded)):
        assert 401 == (await client.post("/health/drain")).status_code
        assert 200 == (await client.get("/health/ready")).status_code  # not draining


async def test_what_start_up_made_is_kept_out_of_the_cyclic_collector(
    settings: Settings,
) -> None:
    """Once started, the objects the app made are frozen (`gc.freeze()`); given back at exit."""
    gc.unfreeze()
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


async def test_errors_carry_the_request_id_and_security_headers(client: httpx.AsyncClient) -> None:
    """Even a 404 problem has the request id (echoed when sent) and the security headers."""
    response = await client.get("/todos/999", headers={"x-request-id": "req-42"})
    assert_problem(response, 404)
    assert "req-42" == response.headers["x-request-id"]
    assert "nosniff" == response.headers["x-content-type-options"]


async def test_cors_is_strict_unless_origins_are_configured(settings: Settings) -> None:
    """No origin configured: a preflight is refused. Configured: answered with CORS headers."""
    preflight = {
        "origin": "https://todo.example",
        "access-control-request-method": "PATCH",
        "access-control-request-headers": "content-type, authorization",
    }
    async for client in serve(create_app(settings)):
        response = await client.options("/todos/1", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
        assert response.status_code >= 400
    allowed = dataclasses.replace(settings, cors_origins=("https://todo.example",))
    async for client in serve(create_app(allowed)):
        response = await client.options("/todos/1", headers=preflight)
        assert 200 == response.status_code
        assert "https://todo.example" == response.headers["access-control-allow-origin"]
        assert "PATCH" in response.headers["access-control-allow-methods"]


async def test_memory_mode_runs_without_redis_and_runs_its_own_worker(settings: Settings) -> None:
    """TODO_REDIS_URL=memory://: one process, no Redis; its in-process worker runs the jobs."""
    single = dataclasses.replace(settings, redis_url="memory://")
    async for client in serve(create_app(single)):
        created = await client.post(
            "/todos", json={"title": "alone"}, headers=write_headers(settings)
        )
        assert 201 == created.status_code
        assert created.json() == (await client.get(created.json()["url"])).json()

        async def notified() -> bool:
            connection = await asyncpg.connect(settings.database_url)
            try:
                return bool(await connection.fetchval("SELECT count(*) FROM notifications"))
            finally:
                await connection.close()

        await eventually(notified)


def over_unix_socket(app: Starlette) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """What `uvicorn --uds` hands the app: a scope whose `client` is `None`."""

    async def unix(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, "client": None}, receive, send)

    return unix


@pytest.mark.parametrize("trusted", [True, False])
async def test_behind_nginx_on_a_unix_socket_each_client_has_its_quota(
    settings: Settings, trusted: bool
) -> None:
    """TODO_TRUSTED_PROXIES=unix: X-Forwarded-For names the client, one quota each.

    Without it nobody on the socket is believed: every request shares one quota.
    """
    proxies = ("unix",) if trusted else ()
    one_write = dataclasses.replace(
        settings, trusted_proxies=proxies, write_rate_limit=Rate(limit=1, period=60.0)
    )
    app = create_app(one_write)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=over_unix_socket(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

            async def post(address: str) -> int:
                headers = {"x-forwarded-for": address, **write_headers(settings)}
                response = await client.post("/todos", json={"title": "t"}, headers=headers)
                return response.status_code

            statuses = [await post("192.0.2.1"), await post("192.0.2.1"), await post("192.0.2.2")]
    assert ([201, 429, 201] if trusted else [201, 429, 429]) == statuses
