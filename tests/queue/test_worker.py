"""`Worker` in this process: running jobs, retries, leases and fencing, shutdown, telemetry."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from scalepy.errors import ConfigurationError, JobCancelled, JobFailed
from scalepy.integrations.opentelemetry import OpenTelemetryInstrumentation
from scalepy.queue import JobStatus, Queue, Worker, current_job
from scalepy.ratelimit import TokenBucket
from scalepy.telemetry import combine
from scalepy.testing import RecordingInstrumentation
from tests.queue.conftest import ALL_BACKENDS, WAIT, redis_store
from tests.support.polling import eventually

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from scalepy.queue import Job


@pytest.fixture
async def recorded(
    queue_url: str, queue_name: str
) -> AsyncIterator[tuple[Queue, RecordingInstrumentation]]:
    """A queue reporting to a recording instrumentation."""
    instrumentation = RecordingInstrumentation()
    async with Queue(queue_url, name=queue_name, instrumentation=instrumentation) as queue:
        yield queue, instrumentation


async def status_is(job: Job[Any], status: JobStatus) -> None:
    """Wait until the job reaches `status`."""

    async def reached() -> bool:
        return status is await job.status()

    await eventually(reached)


@ALL_BACKENDS
async def test_a_job_runs_and_its_result_comes_back(queue: Queue) -> None:
    """The worker runs the task with the job's arguments; `result()` returns its value."""

    @queue.task(name="add")
    async def add(a: int, b: int = 0) -> dict[str, Any]:
        job = current_job()
        return {"sum": a + b, "id": job.id, "attempt": job.attempt, "queue": job.queue}

    async with Worker(queue, concurrency=4) as worker:
        job = await add.enqueue(1, b=2)
        assert {"sum": 3, "id": job.id, "attempt": 1, "queue": queue.name} == await job.result(
            timeout=WAIT
        )
    info = await job.info()
    assert (JobStatus.COMPLETED, 1, worker.name) == (info.status, info.attempts, info.worker)
    assert info.started_at is not None
    assert info.finished_at is not None
    assert 1 == worker.statistics().completed


@ALL_BACKENDS
async def test_many_jobs_run_concurrently(queue: Queue) -> None:
    """Jobs are claimed in batches and run up to `concurrency` at once."""
    running, peak = 0, 0

    @queue.task(name="t")
    async def track(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return n

    jobs = await track.enqueue_many([(n,) for n in range(40)])
    async with Worker(queue, concurrency=8):
        assert list(range(40)) == [await job.result(timeout=WAIT) for job in jobs]
    assert 1 < peak <= 8


@ALL_BACKENDS
async def test_failures_are_retried_then_dead_lettered(
    recorded: tuple[Queue, RecordingInstrumentation],
) -> None:
    """A failing job is retried `retries` times, then dead; `result()` raises JobFailed."""
    queue, instrumentation = recorded

    @queue.task(name="boom", retries=2, backoff=lambda retry: 0.01 * retry)
    async def boom() -> None:
        raise ValueError(f"attempt {current_job().attempt}")

    async with Worker(queue) as worker:
        job = await boom.enqueue()
        with pytest.raises(JobFailed, match="ValueError: attempt 3") as failed:
            await job.result(timeout=WAIT)
    assert "in boom" in failed.value.error  # the traceback is kept
    info = await job.info()
    assert (JobStatus.DEAD, 3) == (info.status, info.attempts)
    stats = worker.statistics()
    assert (3, 2, 1, 0) == (stats.failed, stats.retried, stats.dead_lettered, stats.completed)
    assert [job.id] == [dead.id for dead in await queue.dead()]
    assert (3, 2, 1) == tuple(
        instrumentation.value(name, {"scalepy.queue.task": "boom"})
        for name in (
            "scalepy.queue.attempts.failed",
            "scalepy.queue.jobs.retried",
            "scalepy.queue.jobs.dead_lettered",
        )
    )


@ALL_BACKENDS
async def test_a_result_that_cannot_be_serialized_fails_the_job_without_a_retry(
    queue: Queue,
) -> None:
    """The task ran (its side effect happened once); only its result cannot be stored.

    Retrying would repeat the side effect: the job fails for good, with the cause.
    """
    side_effects = 0

    @queue.task(name="unstorable", retries=3, backoff=lambda retry: 0.0)
    async def unstorable() -> object:
        nonlocal side_effects
        side_effects += 1
        return object()

    async with Worker(queue) as worker:
        job = await unstorable.enqueue()
        with pytest.raises(JobFailed, match=r"SerializationError: task 'unstorable' ran") as failed:
            await job.result(timeout=WAIT)
    assert "not retried" in str(failed.value)
    assert 1 == side_effects
    info = await job.info()
    assert (JobStatus.DEAD, 1) == (info.status, info.attempts)
    stats = worker.statistics()
    assert (1, 0, 1, 0) == (stats.failed, stats.retried, stats.dead_lettered, stats.completed)


@ALL_BACKENDS
async def test_dead_jobs_can_be_re_driven(queue: Queue) -> None:
    """`requeue()` gives dead jobs fresh retries; a job that now succeeds completes."""
    fail = True

    @queue.task(name="flaky", retries=0)
    async def flaky() -> str:
        if fail:
            raise RuntimeError("down")
        return "ok"

    async with Worker(queue):
        job = await flaky.enqueue()
        await status_is(job, JobStatus.DEAD)
        fail = False
        assert 1 == await queue.requeue()
        assert "ok" == await job.result(timeout=WAIT)
    assert 0 == await queue.requeue([job.id])


@ALL_BACKENDS
async def test_an_attempt_past_its_timeout_fails(queue: Queue) -> None:
    """A task with `timeout` that runs longer fails with TimeoutError."""

    @queue.task(name="slow", retries=0, timeout=0.05)
    async def slow() -> None:
        await asyncio.sleep(WAIT)

    async with Worker(queue):
        job = await slow.enqueue()
        with pytest.raises(JobFailed, match="TimeoutError"):
            await job.result(timeout=WAIT)


async def test_a_job_of_a_new_task_waits_for_a_worker_that_has_it(
    queue: Queue, queue_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """In a rolling deploy, an old worker puts a new task's jobs back; a new worker runs them.

    The put-backs are neither attempts nor failures: the job runs once, at its first attempt.
    """
    ran: list[int] = []
    async with Queue(queue_url, name=queue.name) as new_code:

        @new_code.task(name="new", retries=0)
        async def new(n: int) -> int:
            ran.append(n)
            return n

        jobs = [await new.enqueue(n) for n in range(2)]
        async with Worker(queue, unknown_task_delay=0.01, unknown_task_limit=1000) as old:

            async def put_back_twice() -> bool:
                return old.statistics().unknown >= 4

            await eventually(put_back_twice)
            async with Worker(new_code, unknown_task_delay=0.01):
                assert [0, 1] == [await job.result(timeout=WAIT) for job in jobs]
        assert [1, 1] == [(await job.info()).attempts for job in jobs]
    assert (0, 0) == (old.statistics().failed, old.statistics().dead_lettered)
    assert [0, 1] == sorted(ran)
    warned = [r for r in caplog.records if "no task 'new'" in r.getMessage()]
    assert 1 == len(warned)  # once per task name, however many put-backs


async def test_a_job_no_worker_has_the_task_of_is_dead_lettered_after_the_put_backs(
    recorded: tuple[Queue, RecordingInstrumentation], queue_url: str
) -> None:
    """Past `unknown_task_limit` put-backs, the job goes to the dead-letter set, saying why."""
    queue, instrumentation = recorded
    async with Queue(queue_url, name=queue.name) as producer:
        sent = await producer.task(name="elsewhere", retries=5)(asyncio.sleep).enqueue(0)
    job = queue.job(sent.id)
    async with Worker(queue, unknown_task_delay=0.0, unknown_task_limit=2) as worker:
        with pytest.raises(JobFailed, match=r"no worker .* has task 'elsewhere' \(put back 2"):
            await job.result(timeout=WAIT)
    info = await job.info()
    assert (JobStatus.DEAD, 0) == (info.status, info.attempts)
    stats = worker.statistics()
    assert (3, 0, 0, 1) == (stats.unknown, stats.failed, stats.retried, stats.dead_lettered)
    assert 3 == instrumentation.value("scalepy.queue.jobs.unknown_task", {"scalepy.queue.task": ""})
    assert 1 == await queue.requeue([job.id])  # re-driven: put back twice more, then dead again
    async with Worker(queue, unknown_task_delay=0.0, unknown_task_limit=2) as again:
        await status_is(job, JobStatus.DEAD)
    assert 3 == again.statistics().unknown


@ALL_BACKENDS
async def test_cancelling_a_running_job_stops_it(queue: Queue) -> None:
    """A running job's task is cancelled at its worker's next heartbeat."""
    started, stopped = asyncio.Event(), asyncio.Event()

    @queue.task(name="forever")
    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(WAIT * 2)
        finally:
            stopped.set()

    async with Worker(queue, lease=0.3) as worker:
        job = await forever.enqueue()
        await started.wait()
        assert JobStatus.ACTIVE == await job.cancel()
        await stopped.wait()
        with pytest.raises(JobCancelled):
            await job.result(timeout=WAIT)
    assert 1 == worker.statistics().cancelled


async def test_a_lost_lease_stops_the_job_and_the_new_attempt_wins(queue: Queue) -> None:
    """When another worker takes the job over, this one's task is cancelled, its outcome dropped."""
    started, stopped = asyncio.Event(), asyncio.Event()

    @queue.task(name="forever")
    async def forever() -> str:
        started.set()
        try:
            await asyncio.sleep(WAIT * 2)
        finally:
            stopped.set()
        return "first"

    async with Worker(queue, lease=0.3) as worker:
        job = await forever.enqueue()
        await started.wait()
        thief = await steal(queue, job.id)
        await stopped.wait()
        await queue.store.ack([(job.id, thief, "c", b'"second"', 0)], result_ttl_ms=60_000)
        assert "second" == await job.result(timeout=WAIT)
    assert (1, 0) == (worker.statistics().lost, worker.statistics().completed)


async def test_a_completion_after_the_lease_was_lost_is_refused(queue: Queue) -> None:
    """Fencing: an outcome under the old token is not recorded; exactly one completion wins."""

    @queue.task(name="late")
    async def late() -> str:
        await steal(queue, current_job().id)  # another worker takes over meanwhile
        return "late"

    async with Worker(queue, lease=0.3) as worker:
        job = await late.enqueue()
        await eventually(lambda: _lost(worker))
        assert JobStatus.ACTIVE == await job.status()
    assert 0 == worker.statistics().completed


async def _lost(worker: Worker) -> bool:
    return worker.statistics().lost == 1


async def steal(queue: Queue, job_id: str) -> int:
    """Expire the job's lease and claim it as another worker; return the new token."""
    await queue.client.execute("ZADD", f"{redis_store(queue).base}:leases", 0, job_id)
    _, (claimed,) = await queue.store.claim(
        1, lease_ms=60_000, cap=0, result_ttl_ms=60_000, dead_ttl_ms=0, worker="thief"
    )
    assert job_id == claimed.id
    return claimed.token


@ALL_BACKENDS
async def test_stopping_hands_unfinished_jobs_back_at_once(queue: Queue) -> None:
    """`stop()` cancels running jobs and returns them to the queue, the attempt not counted."""
    started = asyncio.Event()

    @queue.task(name="forever")
    async def forever() -> None:
        started.set()
        await asyncio.sleep(WAIT * 2)

    worker = Worker(queue)
    run = asyncio.create_task(worker.run())
    job = await forever.enqueue()
    await started.wait()
    await worker.stop()
    await run
    info = await job.info()
    assert (JobStatus.QUEUED, 0) == (info.status, info.attempts)
    assert 1 == worker.statistics().released


@ALL_BACKENDS
async def test_stopping_lets_jobs_finish_within_the_grace_period(queue: Queue) -> None:
    """With `grace`, running jobs may finish before the worker stops."""
    started = asyncio.Event()

    @queue.task(name="short")
    async def short() -> str:
        started.set()
        await asyncio.sleep(0.05)
        return "done"

    async with Worker(queue, grace=WAIT):
        job = await short.enqueue()
        await started.wait()
    assert JobStatus.COMPLETED == await job.status()


@ALL_BACKENDS
async def test_heartbeats_keep_a_long_job_leased(queue: Queue) -> None:
    """A job running 5x its lease is renewed by the heartbeat and runs once."""
    runs = 0

    @queue.task(name="long")
    async def long() -> None:
        nonlocal runs
        runs += 1
        await asyncio.sleep(1.0)

    async with Worker(queue, lease=0.2, concurrency=2) as worker:
        job = await long.enqueue()
        await job.result(timeout=WAIT)
    assert (1, 0) == (runs, worker.statistics().lost)


async def test_a_job_blocking_the_event_loop_keeps_its_lease(queue: Queue) -> None:
    """The heartbeat thread renews leases while a job blocks the loop for 3x the lease."""
    runs = 0

    @queue.task(name="blocking")
    async def blocking() -> None:
        nonlocal runs
        runs += 1
        time.sleep(0.6)  # noqa: ASYNC251 - blocking the loop is the point; the heartbeat renews

    async with Worker(queue, lease=0.2) as worker:
        job = await blocking.enqueue()
        await job.result(timeout=WAIT)
    assert (1, 0, JobStatus.COMPLETED) == (runs, worker.statistics().lost, await job.status())


@ALL_BACKENDS
async def test_higher_priorities_run_first(queue: Queue) -> None:
    """With one slot, jobs start in priority order, then in enqueue order."""
    order: list[str] = []

    @queue.task(name="t")
    async def record(name: str) -> None:
        order.append(name)

    await record.enqueue("low-1")
    await record.enqueue("low-2")
    jobs = [
        await record.options(priority=5).enqueue("mid"),
        await record.options(priority=9).enqueue("high"),
    ]
    async with Worker(queue, concurrency=1):
        await status_is(jobs[0], JobStatus.COMPLETED)
        await eventually(lambda: _count(order, 4))
    assert ["high", "mid", "low-1", "low-2"] == order


async def _count(items: list[str], n: int) -> bool:
    return len(items) == n


@ALL_BACKENDS
async def test_delayed_jobs_wait_their_time(queue: Queue) -> None:
    """A delayed job starts no earlier than its delay (measured on Redis' clock)."""

    @queue.task(name="t")
    async def noop() -> None: ...

    async with Worker(queue):
        job = await noop.options(delay=0.2).enqueue()
        await job.result(timeout=WAIT)
    info = await job.info()
    assert info.started_at is not None
    # Whole ms on the store's clock: the difference of two float Unix times may fall short.
    assert 0.2 <= round(info.started_at - info.created_at, 3) < WAIT


@ALL_BACKENDS
async def test_the_queue_rate_limit_spaces_job_starts(queue_url: str, queue_name: str) -> None:
    """With a rate limit, job starts follow the policy over all workers."""
    starts: list[float] = []
    async with Queue(
        queue_url, name=queue_name, rate_limit=TokenBucket(capacity=1, refill_rate=20.0)
    ) as queue:

        @queue.task(name="t")
        async def stamp() -> None:
            starts.append(time.monotonic())

        async with Worker(queue, concurrency=5):
            jobs = await stamp.enqueue_many([()] * 5)
            for job in jobs:
                await job.result(timeout=WAIT)
    assert 4 * 0.05 * 0.8 <= max(starts) - min(starts)


@ALL_BACKENDS
async def test_max_running_caps_jobs_over_all_workers(queue_url: str, queue_name: str) -> None:
    """`max_running` bounds the jobs running at once across every worker of the queue."""
    running, peak = 0, 0
    async with Queue(queue_url, name=queue_name, max_running=2) as queue:

        @queue.task(name="t")
        async def track() -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.02)
            running -= 1

        async with Worker(queue, concurrency=5), Worker(queue, concurrency=5):
            jobs = await track.enqueue_many([()] * 10)
            for job in jobs:
                await job.result(timeout=WAIT)
    assert 2 == peak


@ALL_BACKENDS
async def test_a_cron_schedule_fires_from_the_worker(
    recorded: tuple[Queue, RecordingInstrumentation],
) -> None:
    """A worker fires its queue's cron schedules; the job carries the schedule's arguments.

    A fire counts as a job sent of its task, like any enqueue.
    """
    queue, instrumentation = recorded
    fired = asyncio.Event()
    seen: list[str] = []

    @queue.task(name="tick")
    async def tick(label: str) -> None:
        seen.append(label)
        fired.set()

    queue.cron("* * * * * *", tick, "every second")
    async with Worker(queue):
        async with asyncio.timeout(WAIT):
            await fired.wait()
    assert "every second" == seen[0]
    assert instrumentation.value("scalepy.queue.jobs.sent", {"scalepy.queue.task": "tick"}) >= 1


@ALL_BACKENDS
async def test_processing_is_traced_and_measured(
    recorded: tuple[Queue, RecordingInstrumentation],
) -> None:
    """Each attempt is a parentless `process <queue>` span; its wait, duration and end count.

    The worker runs inside a span, but its jobs start from an empty context.
    """
    queue, instrumentation = recorded

    @queue.task(name="t")
    async def noop() -> None: ...

    with instrumentation.span("request"):
        job = await noop.enqueue()
        async with Worker(queue, stats_interval=0.01):
            await job.result(timeout=WAIT)
            await eventually(lambda: _depth_recorded(instrumentation))
    (process,) = [span for span in instrumentation.spans if span.name == f"process {queue.name}"]
    assert None is process.parent
    assert {
        "messaging.operation.type": "process",
        "messaging.message.id": job.id,
        "scalepy.queue.attempt": 1,
    }.items() <= process.attributes.items()
    assert 1 == instrumentation.value("scalepy.queue.jobs.processed", {"scalepy.queue.task": "t"})
    assert 1 == instrumentation.count("scalepy.queue.process.duration", {"scalepy.queue.task": "t"})
    assert 1 == instrumentation.count("scalepy.queue.wait.duration", {"scalepy.queue.task": "t"})


async def _depth_recorded(instrumentation: RecordingInstrumentation) -> bool:
    return any(name == "scalepy.queue.job.count" for name, _, _ in instrumentation.records)


@ALL_BACKENDS
async def test_the_trace_context_travels_with_the_job(queue_url: str, queue_name: str) -> None:
    """With OpenTelemetry, the process span is a child of the send span, in the caller's trace.

    The instrumentation is a combination: the queue finds the member that propagates.
    """
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel = OpenTelemetryInstrumentation(tracer_provider=provider)
    instrumentation = combine(RecordingInstrumentation(), otel)
    async with Queue(queue_url, name=queue_name, instrumentation=instrumentation) as queue:

        @queue.task(name="t")
        async def noop() -> None: ...

        with provider.get_tracer("test").start_as_current_span("request"):
            job = await noop.enqueue()
        async with Worker(queue):
            await job.result(timeout=WAIT)
    provider.shutdown()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    request, send, process = (
        spans["request"],
        spans[f"send {queue_name}"],
        spans[f"process {queue_name}"],
    )
    assert request.context is not None
    assert send.context is not None
    assert process.context is not None
    assert request.context.trace_id == process.context.trace_id
    assert process.parent is not None
    assert send.context.span_id == process.parent.span_id


@ALL_BACKENDS
async def test_a_queue_that_cannot_propagate_sends_no_trace(
    queue_url: str, queue_name: str
) -> None:
    """A queue whose instrumentation carries no context starts each job's trace afresh."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    worker_side = OpenTelemetryInstrumentation(tracer_provider=provider)
    queue = Queue(queue_url, name=queue_name, instrumentation=RecordingInstrumentation())
    async with queue:

        @queue.task(name="t")
        async def noop() -> None: ...

        with provider.get_tracer("test").start_as_current_span("request"):
            job = await noop.enqueue()
        async with Worker(queue, instrumentation=worker_side):
            await job.result(timeout=WAIT)
    provider.shutdown()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    request, process = spans["request"], spans[f"process {queue_name}"]
    assert request.context is not None
    assert process.context is not None
    assert process.parent is None
    assert request.context.trace_id != process.context.trace_id


async def test_bad_worker_options_are_refused(queue: Queue) -> None:
    """Out-of-range options raise ConfigurationError."""
    for options in (
        {"concurrency": 0},
        {"concurrency": True},
        {"lease": 0.05},
        {"grace": -1},
        {"poll_interval": 0},
        {"stats_interval": 0},
    ):
        with pytest.raises(ConfigurationError):
            Worker(queue, **options)


async def test_a_worker_runs_once_at_a_time_and_shows_its_state(queue: Queue) -> None:
    """`run()` twice at once is refused, `stop()` when idle does nothing; repr shows state."""
    worker = Worker(queue, concurrency=3, name="w1")
    await worker.stop()
    assert f"<Worker queue={queue.name!r} idle running=0/3 completed=0>" == repr(worker)
    async with worker:
        await asyncio.sleep(0)
        assert "running" in repr(worker)
        with pytest.raises(RuntimeError, match="running already"):
            await worker.run()


def test_a_worker_given_a_url_says_to_build_a_queue() -> None:
    """`Worker("redis://…")` raises ConfigurationError showing `Worker(Queue(url))`.

    It used to fail with AttributeError ('str' object has no attribute '_store').
    """
    with pytest.raises(ConfigurationError, match=r"Worker\(\) takes a Queue, not a URL"):
        Worker("redis://127.0.0.1:6379/0")  # type: ignore[arg-type]  # the misuse under test
