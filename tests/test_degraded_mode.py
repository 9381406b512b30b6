"""A misconfigured cache or rate limiter says so: one WARNING, one INFO, a startup check.

Against a private redis-server: a wrong port (the server is not running), a wrong
password (the server requires another) and a database index the server lacks. Each
primitive keeps serving by its failure policy, logs one WARNING with the masked URL
and the cause however many calls fail, `ping()` raises `BackendUnavailable`, and once
the server is fixed one INFO says it recovered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
import redis

from scalepy.cache import Cache
from scalepy.errors import BackendUnavailable
from scalepy.health import Health
from scalepy.ratelimit import RateLimiter, TokenBucket
from tests.support.redis_server import RedisServer

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

RIGHT_PASSWORD = "r1ght-one"
WRONG_PASSWORD = "wr0ng/p@ss:w%rd"  # written raw in the URL: '/', '@', ':' and '%'
CALLS = 20


@dataclass
class Primitive:
    """A cache or a limiter on one URL, with one call that uses its backend."""

    name: str
    ping: Callable[[], Awaitable[None]]
    use: Callable[[], Awaitable[object]]
    aclose: Callable[[], Awaitable[None]]


def build(kind: str, url: str) -> Primitive:
    """A cache (serving from its loader) or a fail-open limiter on `url`."""
    if kind == "cache":
        cache = Cache(url, namespace="degraded", local_max_size=0)

        async def load() -> str:
            return "loaded"

        return Primitive(
            "cache 'degraded'",
            cache.ping,
            lambda: cache.get_or_load("key", load, ttl=60),
            cache.aclose,
        )
    limiter = RateLimiter(url, namespace="degraded")
    bucket = TokenBucket(capacity=1_000, refill_rate=1.0)
    return Primitive(
        "rate limiter 'degraded'",
        limiter.ping,
        lambda: limiter.acquire("client", bucket),
        limiter.aclose,
    )


def messages(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    """What the guards logged."""
    return [
        (record.levelno, record.getMessage())
        for record in caplog.records
        if record.name == "scalepy.backends"
    ]


def wrong_port(server: RedisServer) -> tuple[str, Callable[[], None]]:
    """The server is not running; fixing it starts it."""
    server.stop()
    return f"redis://127.0.0.1:{server.port}/0", server.start


def wrong_password(server: RedisServer) -> tuple[str, Callable[[], None]]:
    """The server requires RIGHT_PASSWORD; fixing it makes it require the URL's."""

    def fix() -> None:
        with redis.Redis(port=server.port, password=RIGHT_PASSWORD) as admin:
            admin.config_set("requirepass", WRONG_PASSWORD)

    return f"redis://:{WRONG_PASSWORD}@127.0.0.1:{server.port}/0", fix


def wrong_db(server: RedisServer) -> tuple[str, Callable[[], None]]:
    """The server has 16 databases, the URL names the 100th; fixing it restarts with 100."""

    def fix() -> None:
        server.stop()
        server.options = ("--databases", "100")
        server.start()

    return f"redis://127.0.0.1:{server.port}/99", fix


@pytest.mark.parametrize("kind", ["cache", "limiter"])
@pytest.mark.parametrize("mistake", [wrong_port, wrong_password, wrong_db])
async def test_degraded_mode_is_logged_once_and_recovery_once(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    mistake: Callable[[RedisServer], tuple[str, Callable[[], None]]],
) -> None:
    """Many failing calls log one WARNING; ping() raises; after the fix one INFO."""
    locked = mistake is wrong_password
    with RedisServer(tmp_path, *(("--requirepass", RIGHT_PASSWORD) if locked else ())) as server:
        url, fix = mistake(server)
        primitive = build(kind, url)
        try:
            with caplog.at_level(logging.INFO, logger="scalepy.backends"):
                for _ in range(CALLS):
                    await primitive.use()  # served by the failure policy, never raised
                with pytest.raises(BackendUnavailable) as raised:
                    await primitive.ping()
                fix()
                await primitive.ping()
                await primitive.use()
        finally:
            await primitive.aclose()

    masked = url.replace(WRONG_PASSWORD, "***")
    assert masked == raised.value.backend
    assert raised.value.message.startswith(f"{primitive.name} cannot use its backend: Backend")
    [(warning, degraded), (info, recovered)] = messages(caplog)
    assert (logging.WARNING, logging.INFO) == (warning, info)
    assert degraded.startswith(f"{primitive.name} is degraded: {masked} failed (Backend")
    assert f"{primitive.name} recovered: {masked} answers again" == recovered
    assert WRONG_PASSWORD not in caplog.text + str(raised.value) + repr(raised.value)


async def test_the_lifespan_fails_fast_when_asked_to(tmp_path: Path) -> None:
    """With on_startup=[cache.ping, limiter.ping], a service on a wrong port never starts."""
    url = f"redis://127.0.0.1:{RedisServer(tmp_path).port}/0"  # never started: nothing listens
    cache, limiter = Cache(url, namespace="startup"), RateLimiter(url, namespace="startup")
    health = Health()
    lifespan = health.lifespan(resources=[cache, limiter], on_startup=[cache.ping, limiter.ping])

    with pytest.raises(BackendUnavailable, match="cache 'startup' cannot use its backend"):
        async with lifespan(object()):
            pytest.fail("the service started on a Redis that is not there")

    assert not health.started
