"""A worker stopped with SIGTERM while its jobs run hands them back: none lost, none twice.

A deploy stops workers in the middle of their work. `scalepy worker` then stops
claiming, lets running jobs finish for `--grace` seconds, cancels the rest and puts
them back at the front of the queue, and exits 0; the next worker runs them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import asyncpg
from todo_support import WorkerProcess, eventually

from scalepy.queue import JobStatus, Queue
from todo.tasks import register

if TYPE_CHECKING:
    from pathlib import Path

    from todo.settings import Settings

JOBS = 200
GRACE = 1.0
CONCURRENCY = 4  # WorkerProcess's --concurrency
# The notification jobs blocked on the test's lock: each is running, holding its lease.
_BLOCKED = """SELECT count(*) FROM pg_locks
              WHERE relation = 'notifications'::regclass AND NOT granted"""

_NOTIFIED = "SELECT count(*) FROM notifications"


async def _count(database: asyncpg.Connection, query: str) -> int:
    count: int = await database.fetchval(query)
    return count


async def test_a_sigtermed_worker_hands_back_its_running_jobs_and_none_is_lost(
    settings: Settings, tmp_path: Path
) -> None:
    """200 notification jobs; the first worker is stopped with 4 jobs running and stuck.

    It exits 0 soon after its grace (the stuck jobs would otherwise hold it forever);
    the jobs it held go back to the queue without counting an attempt, and a second
    worker runs everything left. Each job completed, after exactly one counted
    attempt, and there is exactly one notification per job: at least once, made
    idempotent by the job id.
    """
    database = await asyncpg.connect(settings.database_url)
    try:
        todo_ids = [
            row["id"]
            for row in await database.fetch(
                "INSERT INTO todos (title) SELECT 'todo ' || n FROM generate_series(1, $1) n "
                "RETURNING id",
                JOBS,
            )
        ]
        async with Queue(settings.redis_url, name=settings.namespace) as queue:
            jobs = await register(queue).notify_created.enqueue_many([(i,) for i in todo_ids])
            with WorkerProcess(settings, tmp_path / "first.log", grace=GRACE) as first:

                async def some_notified() -> bool:
                    return await _count(database, _NOTIFIED) >= 20

                await eventually(some_notified)
                # From now on every notification waits: the worker's slots fill with
                # running jobs that cannot finish within the grace.
                transaction = database.transaction()
                await transaction.start()
                await database.execute("LOCK TABLE notifications IN SHARE MODE")

                async def all_slots_stuck() -> bool:
                    return await _count(database, _BLOCKED) == CONCURRENCY

                await eventually(all_slots_stuck)
                running = [job for job in jobs if await job.status() is JobStatus.ACTIVE]
                recorded_by_first = await _count(database, _NOTIFIED)
                stopped_in = first.stop()
                handed_back = [await job.status() for job in running]
                await transaction.rollback()
            assert stopped_in < GRACE + 10.0, f"stopped in {stopped_in:.1f} s"
            assert [JobStatus.QUEUED] * CONCURRENCY == handed_back
            assert recorded_by_first < JOBS
            with WorkerProcess(settings, tmp_path / "second.log"):
                # Each job's own outcome, not the row count: the INSERT of a cancelled
                # attempt may still land once the lock is gone (the server finishes it),
                # before the job runs again and finds its row there.
                async with asyncio.timeout(30.0):
                    for job in jobs:
                        await job.result()
            infos = [await job.info() for job in jobs]
        rows = await database.fetch("SELECT job_id, todo_id FROM notifications")
    finally:
        await database.close()
    assert sorted((job.id, todo_id) for job, todo_id in zip(jobs, todo_ids, strict=True)) == sorted(
        (row["job_id"], row["todo_id"]) for row in rows
    )
    assert [(JobStatus.COMPLETED, 1)] * JOBS == [(info.status, info.attempts) for info in infos]
