"""Readiness follows a real Redis going away and coming back; liveness never does."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from scalepy.backends.redis import RedisClient
from scalepy.health import Health, redis_check
from scalepy.testing import asgi_request

if TYPE_CHECKING:
    from tests.support.redis_server import RedisServer

TIMEOUT = 0.5  # the check's timeout
PASS_TTL = 0.5  # how long a passing result is reused
SLACK = 1.0  # scheduling on a busy 2-core machine


async def ready_status(health: Health) -> int:
    """The status /health/ready answers now."""
    return (await asgi_request(health.asgi, "/health/ready")).status


async def wait_for(health: Health, status: int, within: float) -> float:
    """Probe readiness until it answers `status`; return how long that took."""
    started = time.monotonic()
    while await ready_status(health) != status:
        assert time.monotonic() - started < within, f"readiness never answered {status}"
        await asyncio.sleep(0.05)  # polling an external process, as a kubelet does
    return time.monotonic() - started


async def test_readiness_fails_when_redis_stops_and_recovers(redis_server: RedisServer) -> None:
    """Redis killed: readiness 503 within timeout + TTL, liveness 200; back: readiness 200."""
    url = f"{redis_server.url}?timeout={TIMEOUT}&connect_timeout={TIMEOUT}"
    async with (
        RedisClient.from_url(url) as client,
        Health([redis_check(client, timeout=TIMEOUT)], pass_ttl=PASS_TTL, fail_ttl=0.1) as health,
    ):
        health.mark_started()
        assert 200 == await ready_status(health)

        redis_server.stop()
        took = await wait_for(health, 503, within=TIMEOUT + PASS_TTL + SLACK)
        assert took <= TIMEOUT + PASS_TTL + SLACK
        assert 200 == (await asgi_request(health.asgi, "/health/live")).status

        redis_server.start()  # same port: the client reconnects by itself
        await wait_for(health, 200, within=5.0)


async def test_a_frozen_redis_cannot_hold_a_probe(redis_server: RedisServer) -> None:
    """Redis frozen (SIGSTOP): the probe answers 503 at the check timeout, not later."""
    url = f"{redis_server.url}?timeout=5&connect_timeout=5"  # the client alone would wait 5 s
    async with (
        RedisClient.from_url(url) as client,
        Health([redis_check(client, timeout=0.3)], pass_ttl=0, fail_ttl=0) as health,
    ):
        health.mark_started()
        assert 200 == await ready_status(health)

        redis_server.pause()
        started = time.monotonic()
        status = await ready_status(health)
        took = time.monotonic() - started
        live = (await asgi_request(health.asgi, "/health/live")).status
        redis_server.resume()

        assert (503, 200) == (status, live)
        assert 0.3 <= took < 0.3 + SLACK
        await wait_for(health, 200, within=10.0)
