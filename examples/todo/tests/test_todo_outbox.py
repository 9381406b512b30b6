"""The transactional outbox: no notification is lost while Redis is down, none is sent twice."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import TYPE_CHECKING, cast

import asyncpg
import httpx
from todo_support import UnixRedisServer, WorkerProcess, eventually, write_headers

from scalepy.backends.redis import RedisClient
from scalepy.breaker import CircuitBreaker
from scalepy.errors import BackendUnavailable
from scalepy.queue import JobStatus, Queue, Worker
from scalepy.retry import RetryBudget, RetryPolicy
from todo.app import create_app
from todo.models import TodoIn
from todo.outbox import NotificationRelay, notification_job_id
from todo.repository import TodoRepository
from todo.tasks import notify_created, register

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    import pytest
    from starlette.applications import Starlette

    from scalepy.pools import PoolManager, PostgresCluster
    from todo.settings import Settings

CREATED_IN_THE_OUTAGE = 5


async def notified(settings: Settings) -> list[tuple[int, int]]:
    """(todo id, notifications recorded for it) per todo, by id."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        rows = await connection.fetch(
            """SELECT t.id, count(n.job_id) AS n FROM todos t
               LEFT JOIN notifications n ON n.todo_id = t.id GROUP BY t.id ORDER BY t.id"""
        )
    finally:
        await connection.close()
    return [(row["id"], row["n"]) for row in rows]


async def test_a_todo_created_while_redis_is_down_is_notified_once_it_is_back(
    settings: Settings, tmp_path: Path
) -> None:
    """Redis stops; 5 POSTs answer 201; once it is back each todo is notified exactly once.

    The notifications waited in PostgreSQL's outbox, written with their todos; the
    worker's relay enqueued them when Redis answered again.
    """
    redis = UnixRedisServer(tmp_path / "redis.sock")
    private = dataclasses.replace(settings, redis_url=redis.url)
    app = create_app(private)
    with redis:
        async with app.router.lifespan_context(app):
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver"
            )
            with WorkerProcess(private, tmp_path / "worker.log"):
                before = await client.post(
                    "/todos", json={"title": "before"}, headers=write_headers(private)
                )
                assert 201 == before.status_code

                async def first_notified() -> bool:
                    return [(before.json()["id"], 1)] == await notified(private)

                await eventually(first_notified)
                redis.stop()
                for n in range(CREATED_IN_THE_OUTAGE):
                    during = await client.post(
                        "/todos", json={"title": f"during {n}"}, headers=write_headers(private)
                    )
                    assert 201 == during.status_code
                redis.start()

                async def all_notified() -> bool:
                    counts = await notified(private)
                    return len(counts) == 1 + CREATED_IN_THE_OUTAGE and all(n for _, n in counts)

                await eventually(all_notified, within=30.0)
            await client.aclose()
    assert [1] * (1 + CREATED_IN_THE_OUTAGE) == [n for _, n in await notified(private)]


async def test_rows_relayed_again_make_no_second_job_nor_notification(
    settings: Settings,
) -> None:
    """A relay that died between enqueueing and committing leaves its rows due: relayed again.

    The next pass enqueues them under the same job ids: the queue hands back the jobs
    it has, so there is still one job, and one notification, per row; each recorded
    notification deletes its row.
    """
    async with outbox_of_three(settings) as (pools, queue, rows):
        relay = NotificationRelay(pools.postgres, register(queue).notify_created)
        assert 3 == await relay.relay_once()
        assert 0 == await relay.relay_once()  # relayed: not due again for a while
        # The crash: as if the relay's UPDATE had not committed.
        await execute(pools, "UPDATE notification_outbox SET relayed_at = NULL")
        assert 3 == await relay.relay_once()
        assert 3 == (await queue.stats()).queued
        await run_until_notified(queue, pools, settings)
        infos = [await queue.job(notification_job_id(row["id"])).info() for row in rows]
        assert [(JobStatus.COMPLETED, 1)] * 3 == [(i.status, i.attempts) for i in infos]
        assert {(notification_job_id(row["id"]), row["todo_id"]) for row in rows} == {
            (row["job_id"], row["todo_id"])
            for row in await fetch(pools, "SELECT job_id, todo_id FROM notifications")
        }
        assert [] == await fetch(pools, "SELECT * FROM notification_outbox")


async def test_jobs_lost_with_redis_data_are_enqueued_again_after_redeliver_after(
    settings: Settings,
) -> None:
    """Redis restarts without its data after the relay enqueued: the rows are still there.

    Once `redeliver_after` passed since they were relayed, the relay enqueues them
    again, and each todo is notified once.
    """
    async with outbox_of_three(settings) as (pools, queue, _):
        relay = NotificationRelay(pools.postgres, register(queue).notify_created)
        assert 3 == await relay.relay_once()
        async with RedisClient.from_url(settings.redis_url) as redis:
            async for key in redis.redis.scan_iter(match=f"*{settings.namespace}*", count=1000):
                await redis.execute("DEL", key)
        assert 0 == (await queue.stats()).queued
        assert 0 == await relay.relay_once()
        await execute(pools, "UPDATE notification_outbox SET relayed_at = now() - interval '1h'")
        assert 3 == await relay.relay_once()
        await run_until_notified(queue, pools, settings)


async def test_a_dead_lettered_job_of_a_row_still_in_the_outbox_is_re_driven(
    settings: Settings,
) -> None:
    """Jobs that failed every attempt are re-driven when their rows are relayed again.

    Here each job has one attempt, on a worker whose task always raises. The rows stay
    in the outbox: relayed again, the dead jobs are re-driven, and a worker with the
    real task notifies each todo once.
    """
    async with outbox_of_three(settings) as (pools, queue, rows):
        once = queue.task(name="todo.notify_created", retries=0)(notify_created)
        relay = NotificationRelay(pools.postgres, once)
        assert 3 == await relay.relay_once()
        failing = Queue(settings.redis_url, name=settings.namespace)

        @failing.task(name="todo.notify_created", retries=0)
        async def always_fails(todo_id: int) -> bool:
            raise ConnectionError(f"todo {todo_id}: the database is down")

        async def all_dead() -> bool:
            return 3 == (await failing.stats()).dead

        async with failing, Worker(failing):
            await eventually(all_dead)
        await execute(pools, "UPDATE notification_outbox SET relayed_at = now() - interval '1h'")
        assert 3 == await relay.relay_once()
        stats = await queue.stats()
        assert (3, 0) == (stats.queued, stats.dead)
        await run_until_notified(queue, pools, settings)
        assert {notification_job_id(row["id"]) for row in rows} == {
            row["job_id"] for row in await fetch(pools, "SELECT job_id FROM notifications")
        }


async def test_a_row_relayed_max_relays_times_is_parked_and_logged_once(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A notification whose job never records it is not driven again forever.

    After `max_relays` relays the rows stay in the outbox (nothing is lost), the relay
    skips them, and each is logged once at ERROR.
    """
    overdue = "UPDATE notification_outbox SET relayed_at = now() - interval '1h'"
    async with outbox_of_three(settings) as (pools, queue, rows):
        relay = NotificationRelay(pools.postgres, register(queue).notify_created, max_relays=2)
        relayed = []
        for _ in range(3):
            relayed.append(await relay.relay_once())
            await execute(pools, overdue)  # as if `redeliver_after` passed, still not notified
        assert [3, 3, 0] == relayed
        left = await fetch(pools, "SELECT id, relays FROM notification_outbox ORDER BY id")
        assert [(row["id"], 2) for row in rows] == [(row["id"], row["relays"]) for row in left]
        parked = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert 3 == len(parked)
        assert all(any(f"(outbox row {row['id']})" in text for text in parked) for row in rows)


@contextlib.asynccontextmanager
async def outbox_of_three(
    settings: Settings,
) -> AsyncIterator[tuple[PoolManager, Queue, list[asyncpg.Record]]]:
    """Three todos POSTed to an app with Redis (so no relay of its own): three outbox rows."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for n in range(3):
                response = await client.post(
                    "/todos", json={"title": f"todo {n}"}, headers=write_headers(settings)
                )
                assert 201 == response.status_code
        pools: PoolManager = app.state.services.pools
        rows = await fetch(pools, "SELECT * FROM notification_outbox ORDER BY id")
        assert [None] * 3 == [row["relayed_at"] for row in rows]
        async with Queue(settings.redis_url, name=settings.namespace) as queue:
            yield pools, queue, rows


async def run_until_notified(queue: Queue, pools: PoolManager, settings: Settings) -> None:
    """Run a worker until each todo has a notification; assert none has two."""

    async def startup() -> PoolManager:
        return pools

    async def all_notified() -> bool:
        return all(n for _, n in await notified(settings))

    async with Worker(queue, startup=startup):
        await eventually(all_notified)
    assert [1, 1, 1] == [n for _, n in await notified(settings)]


async def fetch(pools: PoolManager, query: str) -> list[asyncpg.Record]:
    """The rows of `query`, on the primary."""
    async with pools.postgres.acquire() as connection:
        return await connection.fetch(query)


async def execute(pools: PoolManager, query: str) -> None:
    """Run `query` on the primary."""
    async with pools.postgres.acquire() as connection:
        await connection.execute(query)


async def test_concurrent_creates_are_written_together_each_with_its_own_outbox_row(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """Creates made while others wait for a connection share a statement (one commit).

    Each still gets its own todo back, in its own order, and each todo its outbox row.
    """
    titles = [f"together {n}" for n in range(20)]
    responses = await asyncio.gather(
        *(client.post("/todos", json={"title": t}, headers=write_headers(settings)) for t in titles)
    )
    created = [response.json() for response in responses]
    assert [201] * len(titles) == [response.status_code for response in responses]
    assert titles == [todo["title"] for todo in created]
    connection = await asyncpg.connect(settings.database_url)
    try:
        outbox = await connection.fetch("SELECT todo_id FROM notification_outbox ORDER BY todo_id")
        commits = await connection.fetchval("SELECT count(DISTINCT created_at) FROM todos")
    finally:
        await connection.close()
    assert sorted(todo["id"] for todo in created) == [row["todo_id"] for row in outbox]
    # Rows of one transaction share its timestamp: fewer commits than creates.
    assert commits < len(titles)


class _Refusing:
    """A PostgreSQL cluster whose first `refusals` acquires are refused, then the real one's."""

    def __init__(self, postgres: PostgresCluster, refusals: int) -> None:
        self._postgres = postgres
        self.refusals = refusals

    def acquire(self) -> contextlib.AbstractAsyncContextManager[object]:
        if self.refusals:
            self.refusals -= 1
            raise ConnectionRefusedError("refused")
        return self._postgres.acquire()


async def test_a_failed_batch_answers_each_create_with_the_error_and_the_next_is_written(
    app: Starlette,
) -> None:
    """Every create of a batch PostgreSQL refused gets BackendUnavailable; later ones succeed."""
    services = app.state.services
    repository = TodoRepository(
        postgres=cast("PostgresCluster", _Refusing(services.pools.postgres, refusals=1)),
        cache=services.cache,
        breaker=CircuitBreaker("test", minimum_calls=100),
        retry_policy=RetryPolicy(attempts=1),
        budget=RetryBudget(),
        ttl=60.0,
    )
    outcomes = await asyncio.gather(
        *(repository.create(TodoIn(title=f"refused {n}")) for n in range(3)),
        return_exceptions=True,
    )
    assert [BackendUnavailable] * 3 == [type(outcome) for outcome in outcomes]
    assert "written" == (await repository.create(TodoIn(title="written"))).title
