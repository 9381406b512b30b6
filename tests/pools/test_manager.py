"""PoolManager: configuration, the environment, opening and closing, Redis, lifespan, checks."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from scalepy.errors import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    PoolClosedError,
    PoolNotOpenError,
)
from scalepy.pools import PoolManager, PoolOptions, PostgresConfig
from scalepy.testing import AsgiResponse, asgi_request
from tests.pools.helpers import wait_for_backends
from tests.support.asgi import run_lifespan

if TYPE_CHECKING:
    from starlette.requests import Request


def test_from_env_reads_the_urls(postgres_dsn: str, redis_url: str) -> None:
    """DATABASE_URL, DATABASE_REPLICA_URLS (comma-separated) and REDIS_URL configure the pools."""
    environ = {
        "DATABASE_URL": postgres_dsn,
        "DATABASE_REPLICA_URLS": f" {postgres_dsn}/a , ,{postgres_dsn}/b",
        "REDIS_URL": redis_url,
    }

    pools = PoolManager.from_env(environ, options=PoolOptions(max_size=3))

    replicas = pools.postgres.replicas
    assert ["replica-1", "replica-2"] == [replica.name for replica in replicas]
    assert [f"{postgres_dsn}/a", f"{postgres_dsn}/b"] == [r.backend for r in replicas]
    assert 3 == pools.postgres.primary.options.max_size
    assert redis_url == str(pools.redis.config)


def test_from_env_needs_a_url() -> None:
    """Without DATABASE_URL and REDIS_URL there is nothing to manage."""
    with pytest.raises(ConfigurationError, match="set DATABASE_URL, REDIS_URL or both"):
        PoolManager.from_env({"DATABASE_URL": "", "UNRELATED": "x"})


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "give postgres, redis or both"),
        ({"redis": "redis://h", "postgres_replicas": ["postgresql://h/db"]}, "need a primary"),
        ({"redis": "redis://h", "startup_timeout": 0}, "startup_timeout must be a finite"),
        ({"postgres": "mysql://h/db"}, "postgresql:// or postgres://"),
        ({"redis": "memory://"}, "PoolManager redis 'default' needs Redis"),
    ],
)
def test_invalid_configurations_are_rejected(given: dict[str, Any], message: str) -> None:
    """Bad arguments raise ConfigurationError at construction."""
    with pytest.raises(ConfigurationError, match=message):
        PoolManager(**given)


def test_replica_configs_keep_their_own_options_and_names(postgres_dsn: str) -> None:
    """A PostgresConfig's options and name win; DSN strings take the manager's options."""
    own = PoolOptions(max_size=30)
    pools = PoolManager(
        postgres=postgres_dsn,
        postgres_replicas=[PostgresConfig(dsn=postgres_dsn, name="eu", options=own), postgres_dsn],
        options=PoolOptions(max_size=5),
    )

    primary, (eu, second) = pools.postgres.primary, pools.postgres.replicas
    assert [("primary", 5), ("eu", 30), ("replica-2", 5)] == [
        (pool.name, pool.options.max_size) for pool in (primary, eu, second)
    ]


def test_accessing_what_was_not_configured_says_so(redis_url: str, postgres_dsn: str) -> None:
    """pools.postgres and pools.redis name the missing argument; several Redis need a name."""
    with pytest.raises(ConfigurationError, match="has no PostgreSQL"):
        _ = PoolManager(redis=redis_url).postgres
    with pytest.raises(ConfigurationError, match="has no Redis"):
        _ = PoolManager(postgres=postgres_dsn).redis
    named = PoolManager(redis={"cache": redis_url, "queue": redis_url})
    with pytest.raises(ConfigurationError, match=r"several Redis clients \(cache, queue\)"):
        _ = named.redis
    assert ["cache", "queue"] == list(named.redis_clients)
    only = PoolManager(redis={"cache": redis_url})
    assert only.redis_clients["cache"] is only.redis  # a single client needs no name


async def test_opens_and_closes_everything(
    postgres_dsn: str, redis_url: str, app_name: str
) -> None:
    """Entering opens the pools and Redis; leaving closes them; a closed manager stays closed."""
    pools = PoolManager(
        postgres=postgres_dsn,
        redis=redis_url,
        options=PoolOptions(application_name=app_name, min_size=2),
    )
    async with pools:
        await pools.open()  # opening twice does nothing
        assert 2 == await wait_for_backends(postgres_dsn, app_name, 2)
        assert b"PONG" == await pools.redis.execute("PING")
        stats = pools.statistics()
        assert stats.postgres is not None
        assert (2, ["default"]) == (stats.postgres.primary.idle, list(stats.redis))
    await pools.aclose()

    assert 0 == await wait_for_backends(postgres_dsn, app_name, 0)
    with pytest.raises(PoolClosedError):
        await pools.open()
    with pytest.raises(PoolClosedError):
        await pools.postgres.fetchval("SELECT 1")


async def test_close_lets_lent_connections_finish(postgres_dsn: str, app_name: str) -> None:
    """close() waits for work in progress, which keeps its connection until done."""
    pools = PoolManager(postgres=postgres_dsn, options=PoolOptions(application_name=app_name))
    await pools.open()
    release = asyncio.Event()

    async def work() -> int:
        async with pools.postgres.acquire() as connection:
            await release.wait()
            value: int = await connection.fetchval("SELECT 42")
            return value

    task = asyncio.create_task(work())
    await asyncio.sleep(0)
    closing = asyncio.create_task(pools.aclose(grace=10))
    await asyncio.sleep(0)
    release.set()

    assert 42 == await task
    await closing


async def test_a_refusal_at_startup_is_not_retried(postgres_dsn: str, app_name: str) -> None:
    """A database that does not exist fails open() at once, with a BackendError."""
    pools = PoolManager(
        postgres=postgres_dsn.rsplit("/", 1)[0] + "/scalepy_no_such_db",
        options=PoolOptions(application_name=app_name),
        startup_timeout=30,
    )

    with pytest.raises(BackendError, match="does not exist") as caught:
        await pools.open()

    assert not isinstance(caught.value, BackendUnavailable)
    with pytest.raises(PoolClosedError):
        await pools.open()


async def test_health_checks_cover_every_pool(
    postgres_dsn: str, redis_url: str, app_name: str
) -> None:
    """One check per PostgreSQL pool and per Redis client, each of which passes."""
    pools = PoolManager(
        postgres=postgres_dsn,
        postgres_replicas=[postgres_dsn],
        redis={"default": redis_url, "cache": redis_url},
        options=PoolOptions(application_name=app_name),
    )
    async with pools:
        checks = pools.health_checks(timeout=2.0)
        results = [await check.probe() for check in checks]

    assert [
        ("postgres", True),
        ("postgres-replica-1", False),
        ("redis", True),
        ("redis-cache", True),
    ] == [(check.name, check.critical) for check in checks]
    assert all(result is not None for result in results)


async def test_lifespan_opens_the_pools_for_a_starlette_app(
    postgres_dsn: str, postgres_database: str, app_name: str
) -> None:
    """Starlette(lifespan=pools.lifespan) opens the pools at startup and closes them at shutdown."""
    pools = PoolManager(postgres=postgres_dsn, options=PoolOptions(application_name=app_name))

    async def database(request: Request) -> JSONResponse:
        return JSONResponse(
            {"database": await pools.postgres.fetchval("SELECT current_database()")}
        )

    app = Starlette(routes=[Route("/db", database)], lifespan=pools.lifespan)
    responses: list[AsgiResponse] = []

    async def request() -> None:
        responses.append(await asgi_request(app, "/db"))

    sent = await run_lifespan(app, while_serving=request)

    [response] = responses
    assert ["lifespan.startup.complete", "lifespan.shutdown.complete"] == sent
    assert (200, f'{{"database":"{postgres_database}"}}'.encode()) == (
        response.status,
        response.body,
    )
    assert 0 == await wait_for_backends(postgres_dsn, app_name, 0)


def test_repr_masks_passwords() -> None:
    """repr() shows the state and the servers, never a password."""
    pools = PoolManager(
        postgres="postgresql://app:s3cret@db/app", redis="redis://:hunter2@cache:6379/0"
    )

    text = repr(pools)
    assert "s3cret" not in text
    assert "hunter2" not in text
    assert text.startswith("<PoolManager new postgres=<PostgresCluster primary='primary'")
    assert "redis=[default: redis://:***@cache:6379/0]" in text


async def test_a_manager_never_opened_says_how_to_open_it(postgres_dsn: str) -> None:
    """Acquiring from a manager nobody opened names `pools.open()` and the lifespan.

    It used to say the pool "is closed", which sent newcomers looking for who closed it.
    """
    pools = PoolManager(postgres=postgres_dsn)
    with pytest.raises(PoolNotOpenError) as raised:
        async with pools.postgres.acquire():
            pass
    assert ("primary", True, True) == (
        raised.value.pool,
        "await pools.open()" in str(raised.value),
        "lifespan" in str(raised.value),
    )
    assert not isinstance(raised.value, PoolClosedError)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {"postgres": "postgresql://app@db/app", "postgres_replicas": "postgresql://app@r/app"},
            r"postgres_replicas must be a list of DSNs, not one string: write \['postgresql://",
        ),
        (
            {"redis": ["redis://127.0.0.1:1/0", "redis://127.0.0.1:2/0"]},
            r"several Redis servers go by name: redis=\{'cache': url, 'queue': url\}",
        ),
    ],
)
def test_a_list_or_a_string_in_the_wrong_place_is_refused(
    options: dict[str, Any], expected: str
) -> None:
    """One replica DSN as a string, or Redis URLs as a list, fail with the form to write.

    They failed with "invalid backend URL 'p'" (the DSN read letter by letter) and an
    AttributeError.
    """
    with pytest.raises(ConfigurationError, match=expected):
        PoolManager(**options)
