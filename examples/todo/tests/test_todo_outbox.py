"""The transactional outbox: no notification is lost while Redis is down, none is sent twice."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import asyncpg
import httpx
from todo_support import UnixRedisServer, WorkerProcess, eventually, write_headers

from scalepy.queue import JobStatus, Queue, Worker
from todo.app import create_app
from todo.outbox import NotificationRelay, notification_job_id
from todo.tasks import register

if TYPE_CHECKING:
    from pathlib import Path

    from scalepy.pools import PoolManager
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


async def test_rows_relayed_again_after_a_crash_make_no_second_job_nor_notification(
    settings: Settings,
) -> None:
    """A relay that died between enqueueing and deleting leaves its rows: enqueued again.

    The next pass enqueues them under the same job ids: the queue hands back the jobs
    it has, so there is still one job, and one notification, per row.
    """
    app = create_app(settings)  # with Redis: no relay in the app, the outbox fills
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for n in range(3):
                response = await client.post(
                    "/todos", json={"title": f"todo {n}"}, headers=write_headers(settings)
                )
                assert 201 == response.status_code
        pools: PoolManager = app.state.services.pools
        async with pools.postgres.acquire() as connection:
            rows = await connection.fetch("SELECT * FROM notification_outbox ORDER BY id")
        assert 3 == len(rows)
        queue = Queue(settings.redis_url, name=settings.namespace)
        tasks = register(queue)
        async with queue:
            relay = NotificationRelay(pools.postgres, tasks.notify_created)
            assert 3 == await relay.relay_once()
            assert 0 == await relay.relay_once()
            async with pools.postgres.acquire() as connection:
                # The crash: the rows are back, as if the DELETE had not committed.
                await connection.executemany(
                    """INSERT INTO notification_outbox OVERRIDING SYSTEM VALUE
                       VALUES ($1, $2, $3, $4)""",
                    [tuple(row.values()) for row in rows],
                )
            assert 3 == await relay.relay_once()
            assert 3 == (await queue.stats()).queued

            async def startup() -> PoolManager:
                return pools

            async with Worker(queue, startup=startup):

                async def all_notified() -> bool:
                    return [1, 1, 1] == [n for _, n in await notified(settings)]

                await eventually(all_notified)
            infos = [await queue.job(notification_job_id(row["id"])).info() for row in rows]
            assert [(JobStatus.COMPLETED, 1)] * 3 == [(i.status, i.attempts) for i in infos]
        async with pools.postgres.acquire() as connection:
            recorded = await connection.fetch("SELECT job_id, todo_id FROM notifications")
        assert {(notification_job_id(row["id"]), row["todo_id"]) for row in rows} == {
            (row["job_id"], row["todo_id"]) for row in recorded
        }
