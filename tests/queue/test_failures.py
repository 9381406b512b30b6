"""When Redis fails: workers keep going and recover, nothing raises out of them."""

from __future__ import annotations

import asyncio
import logging
import time
import types
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from scalepy.backends.redis import RedisClient
from scalepy.errors import BackendTimeout
from scalepy.queue import (
    JobFailed,
    JobStatus,
    Queue,
    RedisQueueStore,
    Worker,
    _periodic,  # internal on purpose: its clock is set ahead of Redis'
    _telemetry,  # internal on purpose: trace capture without the OpenTelemetry integration
)

# The worker's internal parts, each driven directly against a dead Redis.
from scalepy.queue._acks import Acks
from scalepy.queue._heartbeat import Heartbeat, HeldLeases
from scalepy.queue._periodic import run_schedule
from tests.queue.conftest import WAIT
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer, free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from scalepy.queue import Settlement

UNREACHABLE = f"redis://127.0.0.1:{free_port()}/0?connect_timeout=0.2&timeout=0.2"


@pytest.fixture
async def dead_store() -> AsyncIterator[RedisQueueStore]:
    """A store whose Redis refuses connections."""
    async with RedisClient.from_url(UNREACHABLE) as client:
        yield RedisQueueStore(client, "dead")


def logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    """Whether a captured log message contains `text`."""
    return any(text in record.getMessage() for record in caplog.records)


async def test_a_worker_rides_out_a_frozen_redis(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """While Redis does not answer, claims, renewals and outcomes are retried; then all resume."""
    caplog.set_level(logging.DEBUG, logger="scalepy.queue")
    release = asyncio.Event()
    async with Queue(f"{redis_server.url}?timeout=0.2", name="q") as queue:

        @queue.task(name="hold")
        async def hold() -> str:
            await release.wait()
            return "done"

        async with Worker(queue, lease=3.0, poll_interval=0.1) as worker:
            job = await hold.enqueue()
            await eventually(lambda: _status(job, JobStatus.ACTIVE))
            redis_server.pause()
            try:
                await eventually(lambda: _all_logged(caplog, "could not claim"))
                release.set()  # from now on, claims wait for its outcome to be recorded
                await eventually(lambda: _all_logged(caplog, "could not record", "could not renew"))
            finally:
                redis_server.resume()
            assert "done" == await job.result(timeout=WAIT)
            assert "done" == await (await hold.enqueue()).result(timeout=WAIT)
        assert (2, 0) == (worker.statistics().completed, worker.statistics().lost)


@pytest.mark.parametrize("outage", ["stopped", "frozen"])
async def test_jobs_finished_during_an_outage_longer_than_the_lease_run_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, outage: str
) -> None:
    """Outcomes of jobs that ended while Redis was out reach it before the worker's next claim.

    The claim would reap the leases that ran out meanwhile and the outcomes would be
    refused: every job would run again. A stopped Redis keeps its data over the
    restart (AOF). A frozen one (paused) meets the first outcomes a worker ever
    sends without the ack script loaded: it answers NOSCRIPT when it thaws, and
    would run a claim pipelined behind them before the resent script.
    """
    lease = 0.6
    runs: Counter[int] = Counter()
    all_running, release = asyncio.Event(), asyncio.Event()
    durable = ("--appendonly", "yes", "--appendfsync", "always")
    with RedisServer(tmp_path, *durable) as server:
        url = f"{server.url}?timeout=0.2&connect_timeout=0.2"
        async with Queue(url, name="q") as queue:

            @queue.task(name="once")
            async def once(n: int) -> int:
                runs[n] += 1
                if len(runs) == 10:
                    all_running.set()
                await release.wait()
                return n

            async with Worker(queue, concurrency=10, lease=lease, poll_interval=0.1) as worker:
                jobs = await once.enqueue_many([(n,) for n in range(10)])
                async with asyncio.timeout(WAIT):
                    await all_running.wait()
                (server.stop if outage == "stopped" else server.pause)()
                release.set()
                await eventually(lambda: _all_logged(caplog, "could not record"))
                await asyncio.sleep(3 * lease)  # the outage itself: longer than the lease
                (server.start if outage == "stopped" else server.resume)()
                assert list(range(10)) == [await job.result(timeout=WAIT) for job in jobs]
    assert dict.fromkeys(range(10), 1) == dict(runs)
    assert (10, 0) == (worker.statistics().completed, worker.statistics().lost)


async def test_an_enqueue_that_timed_out_may_have_queued_its_job_and_its_id_makes_retries_safe(
    redis_server: RedisServer,
) -> None:
    """An enqueue can reach a frozen Redis and run when it thaws, after raising BackendTimeout.

    Retried with the same `job_id`, it returns that job instead of queueing a second one.
    """
    async with Queue(f"{redis_server.url}?timeout=0.2", name="q") as queue:
        task = queue.task(name="t")(_noop)
        await task.enqueue()  # connected, and the script loaded: the next one is sent whole
        redis_server.pause()
        try:
            with pytest.raises(BackendTimeout):
                await task.options(job_id="payment-1").enqueue()
        finally:
            redis_server.resume()
        await eventually(lambda: _queued(queue, 2))  # the enqueue did happen
        job = await task.options(job_id="payment-1").enqueue()
        assert ("payment-1", False) == (job.id, job.created)
        assert 2 == (await queue.stats()).queued


async def _noop() -> None: ...


async def _queued(queue: Queue, count: int) -> bool:
    return count == (await queue.stats()).queued


async def test_a_result_too_large_to_store_fails_the_job_without_a_retry(tmp_path: Path) -> None:
    """A result over `max_result_bytes` (16 MiB by default) fails the job for good, at once.

    Written, the 32 MiB result held the shared connection past the command timeout:
    the outcome was retried until given up, every other command of the process
    timed out meanwhile, no other job was claimed, and the job then ran again.
    """
    runs = 0
    with RedisServer(tmp_path) as server:
        async with Queue(f"{server.url}?timeout=0.05", name="q") as queue:

            @queue.task(name="huge", retries=2, backoff=lambda retry: 0.0)
            async def huge() -> str:
                nonlocal runs
                runs += 1
                return "x" * (32 * 2**20)

            @queue.task(name="small")
            async def small(n: int) -> int:
                return n

            async with Worker(queue, poll_interval=0.05) as worker:
                job = await huge.enqueue()
                with pytest.raises(JobFailed, match=r"over max_result_bytes \(16777216\)"):
                    await job.result(timeout=WAIT)
                assert 7 == await (await small.enqueue(7)).result(timeout=WAIT)
    assert 1 == runs
    stats = worker.statistics()
    assert (1, 0, 1) == (stats.failed, stats.retried, stats.dead_lettered)


async def _status(job: object, status: JobStatus) -> bool:
    return status is await job.status()  # type: ignore[attr-defined]


async def test_outcomes_are_given_up_after_the_lease(
    dead_store: RedisQueueStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Past `retry_for`, a batch Redis never took is reported with no codes (and logged)."""
    reports: list[tuple[list[str], list[int] | None]] = []
    acks: Acks[str] = Acks(
        dead_store,
        acks_ordered=lambda: dead_store.acks_ordered,
        result_ttl_ms=1000,
        on_settled=lambda items, codes: reports.append((items, codes)),
        retry_for=0.1,
    )
    settlement: Settlement = ("a", 1, "c", b"1", 0)
    acks.add("a", settlement)
    await acks.drain()
    assert [(["a"], None)] == reports
    assert logged(caplog, "gave up recording 1 job outcomes")


async def test_a_failed_renewal_is_logged_and_retried_next_time(
    dead_store: RedisQueueStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A heartbeat that cannot reach Redis logs a warning and reports nothing."""
    held = HeldLeases()
    held.add("a", 1)
    reports: list[object] = []
    heartbeat = Heartbeat(
        dead_store,
        held,
        connector=None,
        lease_ms=1000,
        interval=1.0,
        report=lambda lost, cancel: reports.append((lost, cancel)),
        loop=asyncio.get_running_loop(),
    )
    await heartbeat.beat(dead_store)
    assert [] == reports
    assert 1 == len(held)
    assert logged(caplog, "could not renew 1 job leases")


async def test_a_cron_fire_redis_misses_is_tried_again(
    dead_store: RedisQueueStore, queue: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    """A fire that cannot reach Redis is logged and retried a second later."""

    @queue.task(name="tick")
    async def tick() -> None: ...

    periodic = queue.cron("* * * * * *", tick)
    schedule = asyncio.create_task(run_schedule(dead_store, periodic, on_fired=lambda: None))
    try:
        await eventually(lambda: _all_logged(caplog, "could not fire"))
    finally:
        schedule.cancel()
        await asyncio.gather(schedule, return_exceptions=True)


async def _all_logged(caplog: pytest.LogCaptureFixture, *texts: str) -> bool:
    return all(logged(caplog, text) for text in texts)


async def test_a_clock_ahead_of_redis_waits_for_the_server(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When this machine's clock runs ahead, the fire waits for Redis' clock, then happens once."""
    ahead = types.SimpleNamespace(time=lambda: time.time() + 0.3)
    monkeypatch.setattr(_periodic, "time", ahead)

    @queue.task(name="tick")
    async def tick() -> None: ...

    periodic = queue.cron("* * * * * *", tick)
    fired = asyncio.Event()
    schedules = [
        asyncio.create_task(run_schedule(queue.store, periodic, on_fired=fired.set))
        for _ in range(2)
    ]
    try:
        async with asyncio.timeout(WAIT):
            await fired.wait()
    finally:
        for schedule in schedules:
            schedule.cancel()
        await asyncio.gather(*schedules, return_exceptions=True)
    assert 1 == (await queue.stats()).queued


def test_jobs_carry_no_trace_without_context_propagation() -> None:
    """Without an instrumentation that propagates, jobs carry no context and workers attach none."""
    assert "" == _telemetry.capture_trace(None)
    with _telemetry.trace_scope(None, '{"traceparent": "x"}'):
        pass
