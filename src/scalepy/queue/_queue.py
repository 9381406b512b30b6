"""`Queue`: where tasks are registered and jobs are enqueued, inspected, re-driven, purged."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from scalepy._callables import is_async_callable
from scalepy._lifecycle import LIFECYCLE_SLOTS, AsyncResource
from scalepy._validation import check_finite, check_int
from scalepy.backends import MemoryConfig
from scalepy.backends._resolve import DEFAULT_BACKEND, resolve_store
from scalepy.errors import ConfigurationError
from scalepy.queue._abilities import abilities
from scalepy.queue._cron import Cron
from scalepy.queue._health import queue_check
from scalepy.queue._job import Job, JobInfo, _info
from scalepy.queue._memory import MemoryQueueStore
from scalepy.queue._metrics import JOB_COUNT, JOB_STATE, QUEUE_NAME, SENT
from scalepy.queue._periodic import Periodic
from scalepy.queue._results import ResultWaiter
from scalepy.queue._store import QueueStore
from scalepy.queue._task import Backoff, Task
from scalepy.serializers import JsonSerializer
from scalepy.telemetry import context_propagation, get_default

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping

    from scalepy.backends import BackendConfig
    from scalepy.backends.redis import RedisClient
    from scalepy.clock import Clock
    from scalepy.health import Check
    from scalepy.ratelimit import MemoryRateLimitStore, Policy
    from scalepy.serializers import Serializer
    from scalepy.telemetry import Instrumentation

__all__ = ("Queue", "QueueStats")

DEAD_TTL = 7 * 24 * 3600.0
"""Seconds a dead-lettered job is kept by default: a week to look into it and re-drive it."""

MAX_RESULT_BYTES = 16 * 2**20
"""The largest result stored by default, serialized: written in well under the 1 s
command timeout, even over a 1 Gbit/s link."""
_LARGEST_STRING = 512 * 2**20  # the largest string Redis stores

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueStats:
    """How many jobs a queue holds in each state, read in one consistent snapshot."""

    queued: int
    """Ready, waiting for a worker."""
    scheduled: int
    """Delayed, or backing off before a retry."""
    active: int
    """Leased to a worker."""
    dead: int
    """In the dead-letter set."""


class Queue(AsyncResource):
    """A named task queue in Redis (or Redis Cluster), shared by producers and workers.

    Delivery is at least once: a worker leases each job and renews the lease while
    the job runs; a job whose worker dies is re-queued when its lease expires, so
    no job is lost, and a job may run more than once. Make tasks idempotent, e.g.
    keyed by `current_job().id`.

    `memory://` keeps the queue in this process instead, with the same semantics,
    for tests, scripts and single-process apps: its workers run in this process
    (`Worker(queue)`), and the jobs live as long as the `Queue` object.

    Args:
        backend: A `redis://`, `rediss://`, `unix://` or `redis+cluster://` URL or
            its parsed configuration, a `RedisClient` shared with other primitives,
            `memory://` (the default) for a queue in this process only, or a
            `QueueStore` of your own (used as it is, never closed by the queue).
        name: The queue's name; queues with different names share nothing (nor do
            two `memory://` queues, whatever their names).
        serializer: Encodes arguments and results; JSON by default.
        result_ttl: Seconds a completed or cancelled job (and its result) is kept.
        dead_ttl: Seconds a dead-lettered job is kept after its last failure, 7 days
            by default; `None` keeps dead jobs until re-queued or purged. The
            workers' claims delete the older ones, so it applies while workers run
            (with the `dead_ttl` of the workers' `Queue`).
        max_running: The most jobs of this queue running at once over all
            workers, or `None` for no limit beyond each worker's concurrency.
        rate_limit: A `scalepy.ratelimit` policy every job start must pass, shared
            by all workers (e.g. `TokenBucket(capacity=10, refill_rate=5.0)`): in
            Redis, or in this process for `memory://`; not with a store object.
        batch_size: Jobs per script call in `enqueue_many`.
        max_result_bytes: The largest result a job may store, serialized (16 MiB
            by default, at most 512 MiB). A job whose result is larger fails for
            good, without a retry, as one whose result cannot be serialized: its
            task ran, and a retry would repeat it. Written, a huge result would
            hold the shared connection past the command timeout.
        instrumentation: Where spans and metrics go; the process default if `None`.
        clock: Where a `memory://` queue reads the time of its delays, leases and
            result TTLs (e.g. a `scalepy.testing.FakeClock`, to move them at will);
            Redis reads its own clock.
        owns_client: Close a `RedisClient` given as `backend` in `aclose()`; a
            client built from a URL is always closed, a given one by default not.

    Raises:
        ConfigurationError: An unknown backend, an option out of range, or a
            `rate_limit` with a store object.

    Example:
        ```python
        queue = Queue("redis://localhost:6379/0", name="emails")

        @queue.task(retries=5, timeout=30)
        async def send_email(to: str) -> None: ...

        job = await send_email.enqueue("a@example.com")
        ```
    """

    __slots__ = (
        *LIFECYCLE_SLOTS,
        "_abilities",
        "_client",
        "_dead_ttl_ms",
        "_instrumentation",
        "_propagation",
        "_limit_backend",
        "_periodic",
        "_result_ttl_ms",
        "_results",
        "_send_span",
        "_sent",
        "_store",
        "_store_owned",
        "_tasks",
        "batch_size",
        "config",
        "max_result_bytes",
        "max_running",
        "name",
        "rate_limit",
        "serializer",
    )

    def __init__(
        self,
        backend: str | BackendConfig | RedisClient | QueueStore = DEFAULT_BACKEND,
        *,
        name: str = "default",
        serializer: Serializer | None = None,
        result_ttl: float = 3600.0,
        dead_ttl: float | None = DEAD_TTL,
        max_running: int | None = None,
        rate_limit: Policy | None = None,
        batch_size: int = 500,
        max_result_bytes: int = MAX_RESULT_BYTES,
        instrumentation: Instrumentation | None = None,
        clock: Clock | None = None,
        owns_client: bool = False,
    ) -> None:
        if not name:
            raise ConfigurationError("a Queue needs a non-empty name")
        check_finite("result_ttl", result_ttl, inclusive=True)
        if dead_ttl is not None:
            check_finite("dead_ttl", dead_ttl)
        if max_running is not None and max_running < 1:
            raise ConfigurationError(f"max_running must be >= 1 or None, got {max_running!r}")
        if not 1 <= batch_size <= 5000:
            raise ConfigurationError(f"batch_size must be between 1 and 5000, got {batch_size!r}")
        check_int("max_result_bytes", max_result_bytes, maximum=_LARGEST_STRING)
        self.name = name
        """The queue's name."""
        self.serializer: Serializer = serializer or JsonSerializer()
        """Encodes arguments and results."""
        self.max_running = max_running
        """The most jobs running at once over all workers, or `None`."""
        self.rate_limit = rate_limit
        """The policy job starts must pass, or `None`."""
        self.batch_size = batch_size
        """Jobs per script call in `enqueue_many`."""
        self.max_result_bytes = max_result_bytes
        """The largest result stored, serialized; a larger one fails its job for good."""
        self._instrumentation = instrumentation or get_default()
        self._store, self._client, self._store_owned = _build_store(
            backend, name, clock, owns_client, self._instrumentation
        )
        self.config: BackendConfig | None = (
            self._client.config if self._client is not None else _memory_config(self._store)
        )
        """The Redis server or cluster, `MemoryConfig` for this process, or `None`
        for a store of another kind given as `backend`."""
        self._limit_backend = _limit_backend(self._store, self._client, rate_limit)
        self._abilities = abilities(self._store)
        self._results = ResultWaiter(self._abilities.settled_feed, recheck=self._abilities.recheck)
        self._result_ttl_ms = round(result_ttl * 1000)
        # 0 tells the claim script to keep dead jobs: a retention under 1 ms is 1 ms.
        self._dead_ttl_ms = 0 if dead_ttl is None else max(1, round(dead_ttl * 1000))
        self._tasks: dict[str, Task[..., Any]] = {}
        self._periodic: dict[str, Periodic] = {}
        self._sent = self._instrumentation.metric(SENT)
        self._propagation = context_propagation(self._instrumentation)
        self._send_span = f"send {name}"

    @property
    def client(self) -> RedisClient:
        """The Redis connection the queue runs on.

        Raises:
            ConfigurationError: The queue is a `memory://` one: it has no connection.
        """
        if self._client is None:
            raise ConfigurationError(f"{self!r} lives in memory: it has no Redis client")
        return self._client

    @property
    def store(self) -> QueueStore:
        """The backend store: `MemoryQueueStore`, `RedisQueueStore` or the one given."""
        return self._store

    @property
    def tasks(self) -> Mapping[str, Task[..., Any]]:
        """The registered tasks, by name."""
        return self._tasks

    @property
    def periodic(self) -> Mapping[str, Periodic]:
        """The cron schedules workers of this queue fire, by name."""
        return self._periodic

    @overload
    def task(self, func: Callable[P, Awaitable[R]], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        func: None = None,
        /,
        *,
        name: str | None = None,
        retries: int = 3,
        timeout: float | None = None,
        backoff: Callable[[int], float] | None = None,
        priority: int = 0,
        unique: bool = False,
    ) -> Callable[[Callable[P, Awaitable[R]]], Task[P, R]]: ...

    def task(
        self,
        func: Callable[P, Awaitable[R]] | None = None,
        /,
        *,
        name: str | None = None,
        retries: int = 3,
        timeout: float | None = None,
        backoff: Callable[[int], float] | None = None,
        priority: int = 0,
        unique: bool = False,
    ) -> Task[P, R] | Callable[[Callable[P, Awaitable[R]]], Task[P, R]]:
        """Register an async function as a task; use as `@queue.task` or `@queue.task(...)`.

        Args:
            func: The async function (when used without parentheses).
            name: The name workers find it by; `module.qualname` by default.
            retries: Retries after a failed first attempt before dead-lettering.
            timeout: Seconds an attempt may run before it fails (and is retried).
            backoff: Seconds to wait before retry `n` (0 for the first);
                `Backoff()` (1 s doubling up to 5 min, full jitter) by default.
            priority: Default priority level of its jobs, 0 (lowest) to 9.
            unique: Skip enqueueing while a live job of this task has the same
                arguments (the enqueue returns that job).

        Returns:
            The `Task`, or a decorator making one.

        Raises:
            ConfigurationError: A function that is not async, a name already
                registered, or an option out of range.
        """

        def register(function: Callable[P, Awaitable[R]]) -> Task[P, R]:
            if not callable(function):  # `@queue.task(3)`: an option given by position
                raise ConfigurationError(
                    f"queue.task takes its options by keyword, e.g. @queue.task(retries=3); "
                    f"got {function!r}"
                )
            if not is_async_callable(function):
                raise ConfigurationError(f"a task must be an async function, got {function!r}")
            task_name = f"{function.__module__}.{function.__qualname__}" if name is None else name
            if task_name in self._tasks:
                raise ConfigurationError(f"queue {self.name!r} already has a task {task_name!r}")
            task = Task(
                self,
                function,
                name=task_name,
                retries=retries,
                timeout=timeout,
                backoff=backoff or Backoff(),
                priority=priority,
                unique=unique,
            )
            self._tasks[task_name] = task
            return task

        return register if func is None else register(func)

    def cron(self, schedule: str, task: Task[P, R], *args: P.args, **kwargs: P.kwargs) -> Periodic:
        """Enqueue a job of `task` on a cron schedule (UTC), once per fire over all workers.

        Every worker of the queue runs the schedule; the first to reach a fire time
        enqueues the job and the others see it done. Fires missed while no worker
        ran are skipped, not caught up.

        Args:
            schedule: A cron expression, five fields or six with seconds first
                (see `Cron`), e.g. `"*/5 * * * *"`.
            task: A task of this queue.
            *args: Positional arguments of each job.
            **kwargs: Keyword arguments of each job.

        Returns:
            The schedule, also listed in `periodic`.

        Raises:
            ConfigurationError: A malformed expression, a task of another queue,
                or the same schedule registered twice.
            SerializationError: An argument cannot be serialized.
        """
        if task.queue is not self:
            raise ConfigurationError(f"{task!r} belongs to another queue than {self!r}")
        payload = task.codec.dump_arguments(args, kwargs)
        digest = hashlib.sha1(payload, usedforsecurity=False).hexdigest()[:12]
        name = f"{task.name}:{schedule}:{digest}"
        if name in self._periodic:
            raise ConfigurationError(f"{task.name} already runs on {schedule!r} with these args")
        periodic = Periodic(name=name, cron=Cron(schedule), task=task, args=payload)
        self._periodic[name] = periodic
        return periodic

    def job(self, job_id: str) -> Job[Any]:
        """Return a handle on the job with this id (no round trip)."""
        return Job(self, job_id)

    async def stats(self) -> QueueStats:
        """Count the jobs by state, and record them as the `scalepy.queue.job.count` gauge.

        Raises:
            BackendError: Redis failed or did not answer in time.
        """
        queued, scheduled, active, dead = await self._store.counts()
        stats = QueueStats(queued=queued, scheduled=scheduled, active=active, dead=dead)
        depth = self._instrumentation.metric(JOB_COUNT)
        for state in ("queued", "scheduled", "active", "dead"):
            depth.record(getattr(stats, state), {QUEUE_NAME: self.name, JOB_STATE: state})
        return stats

    async def dead(self, limit: int = 100) -> list[JobInfo]:
        """Return the most recently dead-lettered jobs, newest first.

        Args:
            limit: How many at most; >= 1.

        Raises:
            ConfigurationError: `limit` is not an int >= 1.
            BackendError: Redis failed or did not answer in time.
        """
        check_int("limit", limit)  # 0 or less would read the whole set (ZRANGE's end)
        ids = await self._store.dead_ids(limit)
        stored = await asyncio.gather(*(self._store.job(job_id) for job_id in ids))
        return [_info(job) for job in stored if job is not None]

    async def requeue(self, job_ids: Iterable[str] | None = None, *, limit: int = 1000) -> int:
        """Re-drive dead jobs: back to the queue with their retries restored.

        Args:
            job_ids: The jobs to re-queue; `None` re-queues the most recent `limit`.
            limit: How many at most when `job_ids` is `None`; >= 1.

        Returns:
            How many jobs were re-queued (ids not dead-lettered are skipped).

        Raises:
            ConfigurationError: `limit` is not an int >= 1.
            BackendError: Redis failed or did not answer in time.
        """
        check_int("limit", limit)
        ids = list(job_ids) if job_ids is not None else await self._store.dead_ids(limit)
        return await self._store.requeue(ids)

    async def purge_dead(
        self,
        job_ids: Iterable[str] | None = None,
        *,
        older_than: float | None = None,
        limit: int = 1000,
    ) -> int:
        """Delete dead jobs for good, in one atomic call.

        Args:
            job_ids: The jobs to delete (ids not dead-lettered are skipped); `None`
                deletes the oldest dead jobs instead, up to `limit`.
            older_than: With no `job_ids`, only jobs that died at least this many
                seconds ago; `None` for any age.
            limit: With no `job_ids`, how many at most, oldest first.

        Returns:
            How many jobs were deleted.

        Raises:
            ConfigurationError: `job_ids` given as one string, or with `older_than`;
                `older_than` not a finite number >= 0; `limit` not an int >= 1.
            BackendError: Redis failed or did not answer in time.
        """
        if isinstance(job_ids, str):
            raise ConfigurationError(f"job_ids must be an iterable of ids, not a str: {job_ids!r}")
        if job_ids is not None and older_than is not None:
            raise ConfigurationError("give job_ids or older_than, not both")
        if older_than is not None:
            check_finite("older_than", older_than, inclusive=True)
        check_int("limit", limit)
        ids = None if job_ids is None else list(job_ids)
        older_than_ms = None if older_than is None else round(older_than * 1000)
        return await self._store.purge_dead(ids, older_than_ms=older_than_ms, limit=limit)

    def health_check(
        self,
        *,
        name: str | None = None,
        critical: bool = True,
        timeout: float = 1.0,
        warn_queued: int | None = None,
    ) -> Check:
        """A readiness check for `scalepy.health`: reads the queue's depth from Redis.

        Reported as `"{name}:queued"` and `"{name}:dead"` (jobs); the check fails
        when Redis does not answer within `timeout`.

        Args:
            name: The component's name; `queue:<queue name>` by default.
            critical: Whether a failure fails readiness (else it warns).
            timeout: Seconds the check may take.
            warn_queued: Queued jobs above which the check warns (a backlog); never
                if `None`.

        Returns:
            The check, to give to `Health`.
        """
        return queue_check(
            self, name=name, critical=critical, timeout=timeout, warn_queued=warn_queued
        )

    async def _aclose(self) -> None:
        """Stop waiting for results; close the store if the queue built it.

        A Redis store closes its client if owned; memory keeps its jobs.
        """
        await self._results.aclose()
        if self._store_owned:
            await self._store.aclose()

    def __repr__(self) -> str:
        where = self._store if self.config is None else self.config
        return f"<Queue {self.name!r} {where} tasks={len(self._tasks)}>"


def _build_store(
    backend: str | BackendConfig | RedisClient | QueueStore,
    name: str,
    clock: Clock | None,
    owns_client: bool,
    instrumentation: Instrumentation,
) -> tuple[QueueStore, RedisClient | None, bool]:
    """The queue's store, its Redis client (`None` if it built none) and whether it owns it."""
    built: list[RedisClient] = []

    def redis(client: RedisClient, owns: bool) -> QueueStore:
        from scalepy.queue._redis import RedisQueueStore  # the redis extra, only when built

        built.append(client)
        return RedisQueueStore(client, name, owns_client=owns)

    store, owned = resolve_store(
        backend,
        memory=lambda: MemoryQueueStore(clock=clock),
        redis=redis,
        protocol=QueueStore,
        namespace=None,
        timeout=None,
        owns_client=owns_client,
        instrumentation=instrumentation,
    )
    return store, (built[0] if built else None), owned


def _memory_config(store: QueueStore) -> MemoryConfig | None:
    return MemoryConfig() if isinstance(store, MemoryQueueStore) else None


def _limit_backend(
    store: QueueStore, client: RedisClient | None, rate_limit: Policy | None
) -> RedisClient | MemoryRateLimitStore | None:
    """Where workers' rate limiters keep their buckets, shared by this queue's workers.

    On Redis, over the queue's own client, shared between processes; in memory for a
    memory queue (its buckets refill on the real clock: they pace real work). A store
    object's workers may run in several processes, which no bucket here would pace.

    Returns:
        The backend, or `None` without a `rate_limit`.

    Raises:
        ConfigurationError: `rate_limit` with a store object.
    """
    if rate_limit is None:
        return None
    if client is not None:
        return client
    if not isinstance(store, MemoryQueueStore):
        raise ConfigurationError(
            f"rate_limit needs a queue on Redis or memory://, not on {store!r}: "
            "its workers' buckets could not be shared"
        )
    from scalepy.ratelimit import MemoryRateLimitStore

    return MemoryRateLimitStore()
