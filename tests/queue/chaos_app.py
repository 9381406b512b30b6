"""The queue the chaos tests' worker processes run (`tests.queue.chaos_app:queue`).

Configured by environment variables set by the test: SCALEPY_CHAOS_URL, SCALEPY_CHAOS_QUEUE,
and SCALEPY_CHAOS_CRON (a cron expression for `tick`, optional). Every job counts its runs
with INCR in Redis, so the test can compare them with what it did to the workers.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

from scalepy.queue import Queue, RedisQueueStore, current_job

queue = Queue(
    os.environ.get("SCALEPY_CHAOS_URL", "redis://127.0.0.1:6379/0"),
    name=os.environ.get("SCALEPY_CHAOS_QUEUE", "chaos"),
)
assert isinstance(queue.store, RedisQueueStore)
_BASE = queue.store.base


def runs_key(job_id: str) -> str:
    """The counter of the runs of `job_id` (in the queue's slot)."""
    return f"{_BASE}:runs:{job_id}"


def starts_key(job_id: str) -> str:
    """A list of `pid time` entries, one per start of `job_id`."""
    return f"{_BASE}:starts:{job_id}"


async def _count_run() -> None:
    job_id = current_job().id
    await queue.client.execute("INCR", runs_key(job_id))
    await queue.client.execute("RPUSH", starts_key(job_id), f"{os.getpid()} {time.time()}")


@queue.task(name="work", retries=20, backoff=lambda retry: 0.0)
async def work() -> None:
    """Count the run, then take 0 to 50 ms."""
    await _count_run()
    await asyncio.sleep(random.uniform(0, 0.05))


@queue.task(name="slow", retries=20)
async def slow(seconds: float) -> int:
    """Count the run, sleep without blocking, return the pid of the process that ran it."""
    await _count_run()
    await asyncio.sleep(seconds)
    return os.getpid()


@queue.task(name="blocking", retries=20)
async def blocking(seconds: float) -> int:
    """Count the run, then hold the event loop (and the GIL) busy for `seconds`."""
    await _count_run()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return os.getpid()


@queue.task(name="tick")
async def tick() -> None:
    """The cron job: count the run."""
    await _count_run()


if os.environ.get("SCALEPY_CHAOS_CRON"):
    queue.cron(os.environ["SCALEPY_CHAOS_CRON"], tick)
