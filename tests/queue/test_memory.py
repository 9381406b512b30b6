"""A `memory://` queue: workers in this process, time from an injectable clock.

Most worker and producer tests also run on memory (`@ALL_BACKENDS`); these are
what only a memory queue can show: leases, delays and result TTLs moved by a
`FakeClock` (dead jobs' retention too), and how its waiting and notification
work without Redis.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import pytest

from scalepy.errors import ConfigurationError, JobNotFound
from scalepy.queue import MAX_CLAIM, Batch, JobStatus, MemoryQueueStore, Queue, Worker, current_job
from scalepy.testing import FakeClock
from tests.queue.conftest import WAIT
from tests.support.polling import eventually

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from scalepy.queue import Job


@pytest.fixture
def clock() -> FakeClock:
    """The memory queue's clock."""
    return FakeClock()


@pytest.fixture
async def queue(clock: FakeClock) -> AsyncIterator[Queue]:
    """A memory queue on the fake clock."""
    async with Queue("memory://", name="memory", clock=clock) as fresh:
        yield fresh


async def echo(value: str) -> str:
    """A task returning its argument."""
    return value


async def status_is(job: Job[Any], status: JobStatus) -> bool:
    """Whether the job has reached `status`."""
    return status is await job.status()


async def test_a_memory_queue_has_no_redis_client_and_shares_nothing(queue: Queue) -> None:
    """It runs without Redis; another memory queue, even of the same name, is another queue."""
    with pytest.raises(ConfigurationError, match="no Redis client"):
        _ = queue.client
    job = await queue.task(name="t")(asyncio.sleep).enqueue(0)
    async with Queue("memory://", name="memory") as other:
        with pytest.raises(JobNotFound):
            await other.job(job.id).status()
    assert "memory://" in repr(queue)


async def test_a_delayed_job_waits_for_the_clock(queue: Queue, clock: FakeClock) -> None:
    """A delayed job runs once the store's clock reaches its time, not before."""
    job = await queue.task(name="t")(asyncio.sleep).options(delay=60).enqueue(0)
    async with Worker(queue, poll_interval=0.01):
        await asyncio.sleep(0.05)  # a few polls, to show that none starts the job early
        assert JobStatus.SCHEDULED == await job.status()
        clock.advance(60)
        await job.result(timeout=WAIT)
    info = await job.info()
    assert info.started_at is not None
    assert 60 <= info.started_at - info.created_at < 61


async def test_an_expired_lease_is_reaped_and_its_late_completion_refused(
    queue: Queue, clock: FakeClock
) -> None:
    """A job whose lease ran out is claimed again by another worker; the first outcome loses."""
    release = asyncio.Event()

    @queue.task(name="t")
    async def attempt() -> int:
        number = current_job().attempt
        if number == 1:
            await release.wait()
        return number

    # One slot, taken: the first worker claims nothing more, so the second one reaps.
    async with Worker(queue, concurrency=1, lease=30, name="first") as first:
        job = await attempt.enqueue()
        await eventually(lambda: status_is(job, JobStatus.ACTIVE))
        clock.advance(31)  # the lease ran out, and no renewal came (it renews every 10 s)
        async with Worker(queue, name="second"):
            assert 2 == await job.result(timeout=WAIT)
        release.set()
        await eventually(lambda: _lost(first))
    info = await job.info()
    assert (JobStatus.COMPLETED, 2, "second") == (info.status, info.attempts, info.worker)
    assert 0 == first.statistics().completed


async def _lost(worker: Worker) -> bool:
    return worker.statistics().lost == 1


async def test_results_expire_after_the_result_ttl(clock: FakeClock) -> None:
    """A settled job is kept for `result_ttl` seconds of the clock, then forgotten."""
    async with Queue("memory://", result_ttl=10, clock=clock) as queue:
        job = await queue.task(name="t")(echo).enqueue("done")
        async with Worker(queue):
            assert "done" == await job.result(timeout=WAIT)
        clock.advance(10)
        assert JobStatus.COMPLETED == await job.status()
        clock.advance(0.002)
        with pytest.raises(JobNotFound):
            await job.status()


async def test_idle_workers_wake_when_a_job_is_enqueued() -> None:
    """A wait ends at once when jobs became ready since the last wait, else times out."""
    store = MemoryQueueStore()
    await store.enqueue(Batch("t", 0, 0, "", ""), [("a", b"[]", "")])
    async with asyncio.timeout(1.0):
        await store.wait_for_jobs(WAIT)  # the enqueue left a wake-up
    waiting = asyncio.create_task(store.wait_for_jobs(WAIT))
    await asyncio.sleep(0)
    await store.enqueue(Batch("t", 0, 0, "", ""), [("b", b"[]", "")])
    async with asyncio.timeout(1.0):
        await waiting
    async with asyncio.timeout(1.0):
        await store.wait_for_jobs(0.01)  # nothing new: the wait runs out


async def test_settled_ids_go_to_started_feeds_only() -> None:
    """A feed hears the jobs settled while it is started, in the operation that settles them."""
    store = MemoryQueueStore()
    heard: list[list[str]] = []
    feed = store.settled_feed(heard.append)
    await store.enqueue(Batch("t", 0, 0, "", ""), [("a", b"[]", ""), ("b", b"[]", "")])
    await store.cancel("a", result_ttl_ms=1000)
    await feed.start()
    await feed.start()
    await store.cancel("b", result_ttl_ms=1000)
    await feed.aclose()
    assert [["b"]] == heard


async def test_dead_jobs_list_newest_first_then_by_id(clock: FakeClock) -> None:
    """Jobs that died later come first; jobs that died in one ms by id, highest first."""
    store = MemoryQueueStore(clock=clock)
    batch = Batch("t", 0, 0, "", "")
    for job_id in ("a", "b", "c"):
        await store.enqueue(batch, [(job_id, b"[]", "")])
        (claimed,) = (
            await store.claim(1, lease_ms=1000, cap=0, result_ttl_ms=0, dead_ttl_ms=0, worker="w")
        )[1]
        await store.ack([(job_id, claimed.token, "f", "E", -1)], result_ttl_ms=0)
        clock.advance(0.001 if job_id == "a" else 0)
    assert ["c", "b", "a"] == await store.dead_ids(10)
    assert ["c"] == await store.dead_ids(1)
    assert ["c", "b", "a"] == await store.dead_ids(0)  # as ZRANGE 0 -1 reads them: all


async def test_a_cron_fire_ahead_of_the_clock_says_how_long_to_wait(clock: FakeClock) -> None:
    """A fire time still ahead on the store's clock enqueues nothing and returns the wait."""
    store = MemoryQueueStore(clock=clock)
    batch = Batch("t", 0, 0, "", "")
    now_ms = int(time.time() * 1000)
    left = await store.fire_cron("s", now_ms + 60_000, "cron-1", batch, b"[]")
    assert 60_000 <= left < 61_000
    clock.advance(61)  # past the fire time even when up to 1 s passed since the store began
    assert 0 == await store.fire_cron("s", now_ms + 60_000, "cron-1", batch, b"[]")
    assert "<MemoryQueueStore jobs=1>" == repr(store)


async def test_dead_jobs_are_kept_exactly_their_retention(clock: FakeClock) -> None:
    """A claim deletes a job dead for `dead_ttl_ms` or longer, at most `MAX_CLAIM` per call."""
    store = MemoryQueueStore(clock=clock)
    batch = Batch("t", 0, 0, "", "")
    ids = [f"{i:04}" for i in range(MAX_CLAIM + 1)]
    await store.enqueue(batch, [(job_id, b"[]", "") for job_id in ids])
    _, claimed = await store.claim(
        MAX_CLAIM + 1, lease_ms=1000, cap=0, result_ttl_ms=0, dead_ttl_ms=0, worker="w"
    )
    _, last = await store.claim(1, lease_ms=1000, cap=0, result_ttl_ms=0, dead_ttl_ms=0, worker="w")
    await store.ack([(job.id, job.token, "f", "E", -1) for job in claimed + last], result_ttl_ms=0)

    async def sweep() -> int:
        await store.claim(0, lease_ms=1000, cap=0, result_ttl_ms=0, dead_ttl_ms=60_000, worker="w")
        *_, dead = await store.counts()
        return dead

    clock.advance(59.999)
    assert MAX_CLAIM + 1 == await sweep()
    clock.advance(0.001)
    assert 1 == await sweep()  # the oldest MAX_CLAIM (by id, as they died in one ms)
    assert [ids[-1]] == await store.dead_ids(10)
    assert 0 == await sweep()


async def test_a_worker_deletes_dead_jobs_after_the_queue_s_dead_ttl(clock: FakeClock) -> None:
    """The workers' claims apply the queue's `dead_ttl`; the job is then unknown."""
    async with Queue("memory://", dead_ttl=60, clock=clock) as queue:

        @queue.task(name="fail", retries=0)
        async def fail() -> None:
            raise RuntimeError("always")

        job = await fail.enqueue()
        async with Worker(queue, poll_interval=0.01):
            await eventually(lambda: status_is(job, JobStatus.DEAD))
            clock.advance(60)

            async def gone() -> bool:
                return 0 == (await queue.stats()).dead

            await eventually(gone)
        with pytest.raises(JobNotFound):
            await job.status()
