"""The notification job: enqueued by POST, run once by a real `scalepy worker` process."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import asyncpg
from todo_support import WorkerProcess, eventually, write_headers

from scalepy.queue import JobStatus, Queue

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

    from todo.settings import Settings

TODOS = 20


async def notifications(settings: Settings) -> list[asyncpg.Record]:
    """What the jobs recorded, oldest todo first."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        return await connection.fetch("SELECT * FROM notifications ORDER BY todo_id")
    finally:
        await connection.close()


async def test_each_notification_job_runs_once_in_real_workers(
    client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    """Two worker processes share the jobs of 20 POSTs: each job runs exactly once.

    Each job reads its todo through the pool the worker's startup hook opened and
    records one notification; no job is attempted twice, none is lost.
    """
    with contextlib.ExitStack() as workers:
        logs = [
            workers.enter_context(WorkerProcess(settings, tmp_path / f"w{n}.log")).log
            for n in range(2)
        ]
        created = []
        for n in range(TODOS):
            response = await client.post(
                "/todos", json={"title": f"todo {n}"}, headers=write_headers(settings)
            )
            created.append(response.json())

        async def all_notified() -> bool:
            return len(await notifications(settings)) >= TODOS

        await eventually(all_notified)
    rows = await notifications(settings)
    assert [(todo["id"], todo["title"]) for todo in created] == [
        (row["todo_id"], row["title"]) for row in rows
    ]
    async with Queue(settings.redis_url, name=settings.namespace) as queue:
        infos = [await queue.job(row["job_id"]).info() for row in rows]
        assert [(JobStatus.COMPLETED, 1)] * TODOS == [
            (info.status, info.attempts) for info in infos
        ]
        assert [True] * TODOS == [await queue.job(row["job_id"]).result() for row in rows]
    lines = [
        line for log in logs for line in log.read_text().splitlines() if "notified: todo" in line
    ]
    assert TODOS == len(lines)
