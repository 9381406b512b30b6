"""`Queue`, `Task` and `Job` on the producer side: registering, enqueueing, inspecting."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import astuple
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from scalepy.errors import (
    ConfigurationError,
    JobCancelled,
    JobNotFound,
    ResultTimeout,
    SerializationError,
)
from scalepy.health import Status
from scalepy.queue import Backoff, Job, JobStatus, Queue, Task, Worker, current_job
from scalepy.serializers import JsonSerializer
from scalepy.testing import RecordingInstrumentation
from tests.queue.conftest import ALL_BACKENDS, WAIT

if TYPE_CHECKING:
    from scalepy.queue import Claimed


async def echo(value: Any) -> Any:
    """A task returning its argument."""
    return value


async def claim_all(queue: Queue) -> list[Claimed]:
    """Claim every ready job as a test worker."""
    _, jobs = await queue.store.claim(
        1000, lease_ms=60_000, cap=0, result_ttl_ms=60_000, dead_ttl_ms=0, worker="test"
    )
    return jobs


def test_a_queue_needs_sane_options(redis_url: str) -> None:
    """Bad backends and options are refused with ConfigurationError at construction."""
    with pytest.raises(ConfigurationError):
        Queue("ftp://example.com")
    for options in (
        {"name": ""},
        {"result_ttl": -1},
        {"dead_ttl": 0},
        {"dead_ttl": -1},
        {"dead_ttl": float("inf")},
        {"dead_ttl": float("nan")},
        {"dead_ttl": "7d"},
        {"max_running": 0},
        {"batch_size": 0},
        {"batch_size": 5001},
        {"max_result_bytes": 0},
        {"max_result_bytes": 512 * 2**20 + 1},
        {"max_result_bytes": 1.5},
    ):
        with pytest.raises(ConfigurationError):
            Queue(redis_url, **options)


async def test_tasks_register_with_or_without_options(queue: Queue) -> None:
    """`@queue.task` and `@queue.task(...)` both register; the default name is module.qualname."""
    plain = queue.task(echo)
    named = queue.task(name="named", retries=0, timeout=5, priority=9, unique=True)(echo)
    assert {f"{__name__}.echo": plain, "named": named} == dict(queue.tasks)
    assert (0, 5, 9, True) == (named.retries, named.timeout, named.priority, named.unique)
    assert isinstance(plain.backoff, Backoff)
    assert 7 == await plain(7)  # calling a task runs it here
    assert f"<Task 'named' queue={queue.name!r} retries=0>" == repr(named)


async def test_bad_tasks_are_refused(queue: Queue) -> None:
    """Sync functions, taken names and out-of-range options raise ConfigurationError."""

    def sync() -> None: ...

    with pytest.raises(ConfigurationError, match="async function"):
        queue.task(sync)  # type: ignore[arg-type]
    queue.task(name="taken")(echo)
    with pytest.raises(ConfigurationError, match="already has a task"):
        queue.task(name="taken")(echo)
    for options in (
        {"name": ""},
        {"retries": -1},
        {"retries": True},
        {"timeout": 0},
        {"priority": 10},
        {"priority": -1},
        {"backoff": 3},
    ):
        with pytest.raises(ConfigurationError):
            queue.task(**options)(echo)


def test_backoff_grows_exponentially_with_full_jitter() -> None:
    """Backoff bounds grow by the multiplier up to the maximum; jitter scales them by rng()."""
    fixed = Backoff(initial=1.0, maximum=5.0, jitter=False)
    assert [1.0, 2.0, 4.0, 5.0, 5.0] == [fixed(n) for n in range(5)]
    assert 5.0 == fixed(10_000)  # overflow is capped
    assert 1.0 == Backoff(initial=4.0, rng=lambda: 0.25)(0)
    with pytest.raises(ConfigurationError):
        Backoff(initial=2.0, maximum=1.0)


@ALL_BACKENDS
async def test_enqueue_serializes_now_and_returns_a_handle(queue: Queue) -> None:
    """A job is queued with its arguments; its handle reads status and info."""
    task = queue.task(name="t")(echo)
    job = await task.enqueue({"a": [1, 2]})
    assert job.created
    assert JobStatus.QUEUED == await job.status()
    info = await job.info()
    assert ("t", JobStatus.QUEUED, 0, 0, 3) == (
        info.task, info.status, info.priority, info.attempts, info.retries
    )  # fmt: skip
    assert (None, None, None, False, None) == (
        info.started_at, info.finished_at, info.error, info.cancel_requested, info.worker
    )  # fmt: skip
    assert info.created_at > 0
    (claimed,) = await claim_all(queue)
    assert [[{"a": [1, 2]}], {}] == JsonSerializer().loads(claimed.args)


@ALL_BACKENDS
async def test_unserializable_arguments_fail_at_the_call(queue: Queue) -> None:
    """SerializationError is raised by enqueue itself, and nothing is enqueued."""
    task = queue.task(name="t")(echo)
    with pytest.raises(SerializationError):
        await task.enqueue(object())
    with pytest.raises(SerializationError):
        await task.enqueue_many([(1,), (object(),)])
    assert 0 == (await queue.stats()).queued


@ALL_BACKENDS
async def test_enqueue_many_creates_every_job_in_order(queue_url: str, queue_name: str) -> None:
    """Bulk enqueueing spans several script calls (batch_size) and keeps the order."""
    async with Queue(queue_url, name=queue_name, batch_size=7) as queue:
        task = queue.task(name="t")(echo)
        jobs = await task.enqueue_many([(i,) for i in range(20)])
        assert 20 == len({job.id for job in jobs})
        claimed = await claim_all(queue)
        assert [job.id for job in jobs] == [job.id for job in claimed]
        assert [[[i], {}] for i in range(20)] == [JsonSerializer().loads(c.args) for c in claimed]


@ALL_BACKENDS
async def test_options_delay_and_schedule_jobs(queue: Queue) -> None:
    """`delay` and `at` schedule jobs; `priority` overrides the task's level."""
    task = queue.task(name="t")(echo)
    delayed = await task.options(delay=60).enqueue(1)
    later = await task.options(at=datetime.now(UTC) + timedelta(hours=1)).enqueue(2)
    also = await task.options(delay=timedelta(minutes=1)).enqueue_many([(3,)])
    urgent = await task.options(priority=9).enqueue(4)
    assert [JobStatus.SCHEDULED] * 3 == [await job.status() for job in (delayed, later, also[0])]
    assert 9 == (await urgent.info()).priority
    assert (1, 3) == ((await queue.stats()).queued, (await queue.stats()).scheduled)


async def test_bad_options_are_refused(queue: Queue) -> None:
    """Both delay and at, a negative delay, a naive time or a bad priority are refused."""
    task = queue.task(name="t")(echo)
    now = datetime.now(UTC)
    for options in (
        {"delay": 1, "at": now},
        {"delay": -1},
        {"at": now.replace(tzinfo=None)},
        {"priority": 11},
    ):
        with pytest.raises(ConfigurationError):
            task.options(**options)


@ALL_BACKENDS
async def test_unique_jobs_share_one_live_job(queue: Queue) -> None:
    """A unique task, or a key, returns the live job instead of making another."""
    unique = queue.task(name="u", unique=True)(echo)
    first, again, other = await unique.enqueue(1), await unique.enqueue(1), await unique.enqueue(2)
    assert (True, False, True) == (first.created, again.created, other.created)
    assert first == again != other
    plain = queue.task(name="p")(echo)
    keyed = [await plain.options(key="k").enqueue(n) for n in range(3)]
    assert 1 == len(set(keyed))
    batch = await plain.options(key="b").enqueue_many([(1,), (2,)])
    assert [True, False] == [job.created for job in batch]


@ALL_BACKENDS
async def test_unique_keys_of_different_tasks_never_collide(queue: Queue) -> None:
    """A key is unique per task: no task name and key spell another task's, nor an args hash."""
    emails = queue.task(name="emails", unique=True)(echo)
    welcome = queue.task(name="emails:welcome")(echo)
    by_key = await emails.options(key="welcome:42").enqueue(1)
    other_task = await welcome.options(key="42").enqueue(1)
    by_args = await emails.enqueue(1)
    args_digest = hashlib.sha1(queue.serializer.dumps([[1], {}]), usedforsecurity=False)
    by_digest_key = await emails.options(key=args_digest.hexdigest()).enqueue(2)
    jobs = (by_key, other_task, by_args, by_digest_key)
    assert [True] * 4 == [job.created for job in jobs]
    assert 4 == len(set(jobs))


@ALL_BACKENDS
async def test_an_enqueue_repeated_with_its_job_id_makes_one_job(queue: Queue) -> None:
    """The id is the idempotency key: a repeat returns the job, running or ended, never a copy."""
    task = queue.task(name="t")(echo)
    first = await task.options(job_id="order-7:receipt").enqueue(1)
    again = await task.options(job_id="order-7:receipt").enqueue(2)
    assert ("order-7:receipt", True, False) == (first.id, first.created, again.created)
    assert first == again
    async with Worker(queue):
        assert 1 == await first.result(timeout=WAIT)
    repeated = await task.options(job_id="order-7:receipt").enqueue(3)
    assert (False, 1) == (repeated.created, await repeated.result(timeout=WAIT))
    assert (0, 0, 0, 0) == astuple(await queue.stats())


@ALL_BACKENDS
async def test_a_job_id_taken_by_another_task_is_refused(queue: Queue) -> None:
    """Job ids are queue-wide: one held by a job of another task raises, nothing is created."""
    first = queue.task(name="first")(echo)
    second = queue.task(name="second")(echo)
    await first.options(job_id="shared").enqueue(1)
    with pytest.raises(ConfigurationError, match=r"id 'shared' is taken by a job of task 'first'"):
        await second.options(job_id="shared").enqueue(1)
    assert 1 == (await queue.stats()).queued


async def test_a_job_id_taken_by_another_task_is_found_in_one_round_trip(
    queue_url: str, queue_name: str
) -> None:
    """The enqueue script itself reports the other task: one command, refused or not."""
    recording = RecordingInstrumentation()
    async with Queue(queue_url, name=queue_name, instrumentation=recording) as queue:
        first = queue.task(name="first")(echo)
        second = queue.task(name="second")(echo)
        await first.options(job_id="shared").enqueue(1)  # loads the script
        sent = recording.value("scalepy.redis.pipeline.size")
        await first.options(job_id="shared").enqueue(1)
        with pytest.raises(ConfigurationError, match="is taken by a job of task 'first'"):
            await second.options(job_id="shared").enqueue(1)
        assert 2 == recording.value("scalepy.redis.pipeline.size") - sent


async def test_bad_job_ids_are_refused(queue: Queue) -> None:
    """A job id is a non-empty string without whitespace, of one job only."""
    task = queue.task(name="t")(echo)
    for job_id in ("", "a b", "tab\there", "x" * 1001):
        with pytest.raises(ConfigurationError, match="job_id"):
            task.options(job_id=job_id)
    with pytest.raises(ConfigurationError, match="job_id"):
        await task.options(job_id="one").enqueue_many([(1,), (2,)])


@ALL_BACKENDS
async def test_a_thousand_concurrent_enqueues_with_one_key_make_one_job(queue: Queue) -> None:
    """1,000 enqueues racing with the same unique key create exactly one job."""
    task = queue.task(name="t")(echo)
    jobs = await asyncio.gather(*(task.options(key="once").enqueue(n) for n in range(1000)))
    assert 1 == len({job.id for job in jobs})
    assert 1 == sum(job.created for job in jobs)
    assert 1 == (await queue.stats()).queued


@ALL_BACKENDS
async def test_cancel_a_waiting_job(queue: Queue) -> None:
    """A cancelled job never runs, and its result raises JobCancelled."""
    task = queue.task(name="t")(echo)
    job = await task.enqueue(1)
    assert JobStatus.CANCELLED == await job.cancel()
    assert JobStatus.CANCELLED == await job.cancel()
    with pytest.raises(JobCancelled, match="was cancelled"):
        await job.result(timeout=1)
    assert [] == await claim_all(queue)


@ALL_BACKENDS
async def test_unknown_jobs_raise_job_not_found(queue: Queue) -> None:
    """Reading or cancelling an id the queue does not know raises JobNotFound."""
    job = queue.job("nope")
    for call in (job.status, job.info, job.cancel, job.result):
        with pytest.raises(JobNotFound, match="nope"):
            await call()


@ALL_BACKENDS
async def test_result_times_out_while_the_job_waits(queue: Queue) -> None:
    """`result(timeout)` raises ResultTimeout when no worker settles the job in time."""
    job = await queue.task(name="t")(echo).enqueue(1)
    with pytest.raises(ResultTimeout, match=r"did not finish within 0\.050 s"):
        await job.result(timeout=0.05)


async def test_job_handles_compare_by_queue_and_id(queue: Queue, redis_url: str) -> None:
    """Handles are equal when they name the same job of the same queue."""
    async with Queue(redis_url, name="other") as other:
        assert queue.job("a") == queue.job("a")
        assert queue.job("a") != other.job("a")
        assert queue.job("a") != "a"
        assert 1 == len({queue.job("a"), queue.job("a")})
        assert f"<Job 'a' queue={queue.name!r}>" == repr(queue.job("a"))


async def test_cron_schedules_are_registered_once(queue: Queue, redis_url: str) -> None:
    """`cron` validates the expression and the task, and refuses duplicates."""
    task = queue.task(name="t")(echo)
    periodic = queue.cron("*/5 * * * *", task, 1)
    assert {periodic.name: periodic} == dict(queue.periodic)
    assert queue.cron("*/5 * * * *", task, 2).name != periodic.name
    with pytest.raises(ConfigurationError, match="already runs"):
        queue.cron("*/5 * * * *", task, 1)
    with pytest.raises(ConfigurationError, match="fields"):
        queue.cron("never", task, 1)
    async with Queue(redis_url, name="other") as other:
        with pytest.raises(ConfigurationError, match="another queue"):
            other.cron("* * * * *", task, 1)


@ALL_BACKENDS
async def test_sends_are_spans_and_counted(queue_url: str, queue_name: str) -> None:
    """Each enqueue is a `send <queue>` span; created jobs are counted per task."""
    instrumentation = RecordingInstrumentation()
    async with Queue(queue_url, name=queue_name, instrumentation=instrumentation) as queue:
        task = queue.task(name="t", unique=True)(echo)
        await task.enqueue(1)
        await task.enqueue(1)
        await task.enqueue_many([(2,), (3,)])
    assert [f"send {queue_name}"] * 3 == [span.name for span in instrumentation.spans]
    assert [1, 1, 2] == [
        span.attributes["messaging.batch.message_count"] for span in instrumentation.spans
    ]
    assert 3 == instrumentation.value("scalepy.queue.jobs.sent", {"scalepy.queue.task": "t"})


@ALL_BACKENDS
async def test_stats_record_the_job_count_gauge(queue_url: str, queue_name: str) -> None:
    """`stats()` counts jobs by state and records them as the job count gauge."""
    instrumentation = RecordingInstrumentation()
    async with Queue(queue_url, name=queue_name, instrumentation=instrumentation) as queue:
        await queue.task(name="t")(echo).enqueue(1)
        stats = await queue.stats()
    assert (1, 0, 0, 0) == (stats.queued, stats.scheduled, stats.active, stats.dead)
    assert [1, 0, 0, 0] == [
        instrumentation.value("scalepy.queue.job.count", {"scalepy.queue.job.state": state})
        for state in ("queued", "scheduled", "active", "dead")
    ]


@ALL_BACKENDS
async def test_the_health_check_reports_the_backlog(queue: Queue) -> None:
    """The readiness check observes queued and dead jobs, warning past `warn_queued`."""
    await queue.task(name="t")(echo).enqueue_many([(1,), (2,)])
    check = queue.health_check(warn_queued=1)
    assert f"queue:{queue.name}" == check.name
    observed = await check.probe()
    assert isinstance(observed, list)
    queued, dead = observed
    assert ("queued", 2, Status.WARN, "more than 1 jobs queued") == (
        queued.measurement, queued.value, queued.status, queued.output
    )  # fmt: skip
    assert ("dead", 0, Status.PASS) == (dead.measurement, dead.value, dead.status)
    calm = await queue.health_check(name="jobs").probe()
    assert isinstance(calm, list)
    assert Status.PASS == calm[0].status


@ALL_BACKENDS
async def test_purge_dead_deletes_dead_jobs_for_good(queue: Queue) -> None:
    """By id, by age, or the oldest up to a limit; only dead jobs, and the count is returned."""
    task = queue.task(name="t", retries=0)(echo)
    jobs = await task.enqueue_many([(i,) for i in range(4)])
    live = await task.enqueue("live")
    claimed = [job for job in await claim_all(queue) if job.id != live.id]
    settlements = [(job.id, job.token, "f", "E", -1) for job in claimed]
    assert [3] * 4 == await queue.store.ack(settlements, result_ttl_ms=60_000)
    assert 0 == await queue.purge_dead(older_than=3600)
    assert 1 == await queue.purge_dead([jobs[3].id, live.id, "unknown"])
    assert 1 == await queue.purge_dead(limit=1)
    assert 2 == await queue.purge_dead(older_than=0)
    assert 0 == (await queue.stats()).dead
    assert JobStatus.ACTIVE == await live.status()
    with pytest.raises(JobNotFound):
        await jobs[0].status()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"job_ids": "job-1"}, "not a str"),
        ({"job_ids": ["job-1"], "older_than": 60}, "not both"),
        ({"older_than": -1}, "older_than must be a finite number >= 0"),
        ({"older_than": float("nan")}, "older_than must be a finite number"),
        ({"limit": 0}, "limit must be an int >= 1"),
        ({"limit": 1.5}, "limit must be an int >= 1"),
        ({"limit": True}, "limit must be an int >= 1"),
    ],
)
async def test_purge_dead_refuses_bad_arguments(arguments: dict[str, Any], message: str) -> None:
    """Bad arguments raise ConfigurationError before anything is deleted."""
    async with Queue("memory://") as queue:
        with pytest.raises(ConfigurationError, match=message):
            await queue.purge_dead(**arguments)


@pytest.mark.parametrize("limit", [0, -1, 2.0, True])
async def test_dead_and_requeue_refuse_a_bad_limit(limit: Any) -> None:
    """A limit of 0 or less would read the whole dead set (ZRANGE's end index)."""
    async with Queue("memory://") as queue:
        with pytest.raises(ConfigurationError, match="limit must be an int >= 1"):
            await queue.dead(limit)
        with pytest.raises(ConfigurationError, match="limit must be an int >= 1"):
            await queue.requeue(limit=limit)


def test_statuses_tell_whether_the_job_ended() -> None:
    """Completed, dead and cancelled jobs are finished; the others are not."""
    assert {JobStatus.COMPLETED, JobStatus.DEAD, JobStatus.CANCELLED} == {
        status for status in JobStatus if status.finished
    }


def test_current_job_is_only_set_inside_a_job() -> None:
    """Outside a worker's job, `current_job()` raises LookupError."""
    with pytest.raises(LookupError):
        current_job()


def test_task_type_keeps_the_signature(queue: Queue) -> None:
    """`Task` is generic in the function's parameters and result (checked by mypy)."""
    task: Task[[int], int] = queue.task(name="t")(echo)
    job: Job[Any] = queue.job("x")
    assert isinstance(task, Task)
    assert isinstance(job, Job)


def test_an_option_given_by_position_says_options_are_keywords() -> None:
    """`@queue.task(3)` raises ConfigurationError showing `@queue.task(retries=3)`."""
    queue = Queue()
    with pytest.raises(ConfigurationError, match=r"e\.g\. @queue\.task\(retries=3\); got 3$"):
        queue.task(3)  # type: ignore[call-overload]  # the misuse under test
