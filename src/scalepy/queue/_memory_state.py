"""`MemoryState`: a memory queue's data, and the helpers `lua/prelude.lua` gives each script.

Dicts, deques and heaps stand for the Redis keys: `ready` lists per level,
`Deadlines` for the `scheduled`, `leases`, `dead` and (ended jobs') expiry sorted sets.
Where a script would push to the `wake` list, idle workers' futures are resolved;
where it would publish settled ids, the feeds' callbacks are called.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalepy.clock import MonotonicClock
from scalepy.queue._deadlines import Deadlines

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from scalepy.clock import Clock

__all__ = ("LIVE", "MemoryFeed", "MemoryJob", "MemoryState", "encode")

LIVE = frozenset(("queued", "scheduled", "active"))
"""The states of a job that has yet to end."""


@dataclass(slots=True, eq=False)
class MemoryJob:
    """The job hash of `lua/prelude.lua`, as fields; `None` where the hash has none."""

    task: str
    args: bytes
    level: int
    retries: int
    created: int
    state: str
    ready_at: int
    trace: str
    ukey: str
    token: int = 0
    tries: int = 0
    started: int | None = None
    finished: int | None = None
    error: bytes | None = None
    result: bytes | None = None
    cancel: bool = False
    worker: str | None = None
    unknown: int = 0


class MemoryState:
    """The data of `lua/prelude.lua`'s keys, and its helpers; `MemoryQueueStore` adds the scripts.

    Args:
        clock: Where time comes from; the Unix time in ms starts at the wall clock
            and moves with `clock` (a `FakeClock` moves it at will).
    """

    __slots__ = (
        "_clock",
        "_cron",
        "_dead",
        "_epoch_ms",
        "_expiring",
        "_jobs",
        "_leases",
        "_listeners",
        "_ready",
        "_scheduled",
        "_settled",
        "_unique",
        "_waiters",
        "_wake_pending",
        "_woken",
    )

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or MonotonicClock()
        self._epoch_ms = time.time() * 1000 - self._clock.now() * 1000
        self._jobs: dict[str, MemoryJob] = {}
        self._ready: dict[int, deque[str]] = {}  # level -> ids; no empty deque is kept
        self._scheduled = Deadlines()  # id -> run at
        self._leases = Deadlines()  # id -> lease deadline
        self._expiring = Deadlines()  # id -> when the ended job's hash expires
        self._dead = Deadlines()  # id -> time of death
        self._unique: dict[str, str] = {}  # unique key -> id
        self._cron: dict[str, int] = {}  # schedule -> last fire
        self._waiters: set[asyncio.Future[None]] = set()
        self._wake_pending = False  # the `wake` list holds a token
        self._listeners: set[Callable[[list[str]], None]] = set()
        self._settled: list[str] = []  # ids settled by the running operation
        self._woken = False  # the running operation made jobs ready

    # -- waiting and notification ---------------------------------------------------

    async def wait_for_jobs(self, seconds: float) -> None:
        """Wait until an operation makes jobs ready, or `seconds` pass."""
        if self._wake_pending:
            self._wake_pending = False
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await waiter
        finally:
            self._waiters.discard(waiter)

    def settled_feed(self, on_settled: Callable[[list[str]], None]) -> MemoryFeed:
        """A feed that calls `on_settled` from within the operation that settled the jobs."""
        return MemoryFeed(self._listeners, on_settled)

    # -- the prelude's helpers ------------------------------------------------------

    def _begin(self) -> int:
        """Read the clock, and drop the ended jobs whose result TTL has run out."""
        now = int(self._clock.now() * 1000 + self._epoch_ms)
        # A Redis key lives through its expiry ms and is gone after it.
        for job_id in self._expiring.pop_due(now - 1):
            self._jobs.pop(job_id, None)
        return now

    def _create(
        self,
        job_id: str,
        task: str,
        args: bytes,
        level: int,
        retries: int,
        trace: str,
        ukey: str,
        now: int,
        state: str,
        ready_at: int,
    ) -> None:
        self._jobs[job_id] = MemoryJob(
            task, args, level, retries, now, state, ready_at, trace, ukey
        )
        if ukey:
            self._unique[ukey] = job_id

    def _holder(self, ukey: str) -> str | None:
        """The id of the live job holding this unique key, if one does."""
        job_id = self._unique.get(ukey)
        job = None if job_id is None else self._jobs.get(job_id)
        return job_id if job is not None and job.state in LIVE else None

    def _enlist(self, level: int, ids: list[str], *, front: bool = False) -> None:
        ready = self._ready.setdefault(level, deque())
        if front:
            ready.extendleft(ids)
        else:
            ready.extend(ids)
        self._woken = True

    def _unlist(self, job_id: str, level: int) -> None:
        ready = self._ready[level]
        ready.remove(job_id)
        if not ready:
            del self._ready[level]

    def _push_ready(self, job_id: str, job: MemoryJob, now: int, *, front: bool) -> None:
        job.state, job.ready_at = "queued", now
        self._enlist(job.level, [job_id], front=front)

    def _schedule(self, job_id: str, job: MemoryJob, run_at: int) -> None:
        self._scheduled.set(job_id, run_at)
        job.state, job.ready_at = "scheduled", run_at

    def _retry(self, job_id: str, job: MemoryJob, now: int, delay: int) -> None:
        """Make the job due again after `delay` ms: scheduled, or ready at once."""
        if delay > 0:
            self._schedule(job_id, job, now + delay)
        else:
            self._push_ready(job_id, job, now, front=False)

    def _release_unique(self, job_id: str, job: MemoryJob) -> None:
        if job.ukey and self._unique.get(job.ukey) == job_id:
            del self._unique[job.ukey]

    def _settle(
        self,
        job_id: str,
        job: MemoryJob,
        state: str,
        now: int,
        ttl: int,
        *,
        result: bytes | None = None,
        error: bytes | None = None,
    ) -> None:
        job.state, job.finished = state, now
        if result is not None:
            job.result = result
        if error is not None:
            job.error = error
        self._release_unique(job_id, job)
        if ttl > 0:
            self._expiring.set(job_id, now + ttl)
        else:
            del self._jobs[job_id]
        self._settled.append(job_id)

    def _bury(self, job_id: str, job: MemoryJob, error: bytes, now: int) -> None:
        job.state, job.finished, job.error = "dead", now, error
        self._dead.set(job_id, now)
        self._release_unique(job_id, job)
        self._settled.append(job_id)

    def _purge(self, job_ids: Iterable[str]) -> int:
        """Delete these dead jobs, skipping ids not dead (`purge`); returns how many."""
        return self._forget([job_id for job_id in job_ids if self._dead.discard(job_id)])

    def _purge_before(self, cutoff: float, limit: float) -> int:
        """Delete up to `limit` jobs dead at `cutoff` or earlier, oldest first.

        `purge(dead_before(cutoff, limit))`; returns how many.
        """
        return self._forget(self._dead.pop_due(cutoff, limit))

    def _forget(self, dead: list[str]) -> int:
        for job_id in dead:  # nothing else names a dead job (its unique key went at death)
            del self._jobs[job_id]
        return len(dead)

    def _finish(self) -> None:
        """Wake the idle workers if jobs became ready, announce the settled jobs."""
        if self._woken:
            if self._waiters:
                for waiter in self._waiters:
                    if not waiter.done():
                        waiter.set_result(None)
            else:
                self._wake_pending = True
        settled, self._settled, self._woken = self._settled, [], False
        if settled:
            for listener in list(self._listeners):
                listener(settled)


class MemoryFeed:
    """Registers a callback with a `MemoryQueueStore` while started."""

    __slots__ = ("_listeners", "_on_settled")

    def __init__(
        self,
        listeners: set[Callable[[list[str]], None]],
        on_settled: Callable[[list[str]], None],
    ) -> None:
        self._listeners = listeners
        self._on_settled = on_settled

    async def start(self) -> None:
        self._listeners.add(self._on_settled)

    async def aclose(self) -> None:
        self._listeners.discard(self._on_settled)


def encode(value: bytes | str) -> bytes:
    """The bytes Redis keeps for a script argument."""
    return value if isinstance(value, bytes) else value.encode()
