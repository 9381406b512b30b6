"""`MemoryQueueStore`: a queue in this process, the reference model of the Lua scripts.

Each operation does what its script in `lua/` does, step by step and in the same
order, on `MemoryState`'s data instead of Redis keys, and reads the time from a
`Clock` where a script reads Redis' `TIME`. No operation awaits anything, so
each is atomic on the event loop as a script is on the server. Where a script
guards against a key that may be gone, this relies on what the scripts keep true
and reads directly: an id on a ready list is a queued job (a cancel takes it
off), an id in the leases an active one, a dead id a kept job. Property tests
drive it and `RedisQueueStore` with the same operations and check they agree.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from scalepy.queue._memory_state import MemoryState, encode
from scalepy.queue._store import MAX_CLAIM, Claimed, StoredJob

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from scalepy.queue._store import Batch, NewJob, Settlement

__all__ = ("MemoryQueueStore",)


class MemoryQueueStore(MemoryState):
    """One queue's state in this process: for tests, scripts and single-process apps.

    Jobs live only as long as the store, and only code on this event loop sees
    them; a second store (another `Queue("memory://")`) is another queue. It
    wakes idle workers, announces settled jobs and orders acks
    (`WakingQueueStore`, `AnnouncingQueueStore`, `OrderedAcksQueueStore`); it is
    no `ConnectingQueueStore`: workers renew leases from a task of the loop.

    Args:
        clock: Where time comes from; the store's Unix time in ms starts at the
            wall clock and moves with `clock` (a `FakeClock` moves it at will).
    """

    __slots__ = ()

    acks_ordered = True
    """See `OrderedAcksQueueStore`: every call runs at once, in order."""

    # -- operations (one per script) ------------------------------------------------

    async def enqueue(
        self, batch: Batch, jobs: Sequence[NewJob]
    ) -> list[tuple[str, bool, str | None]]:
        """See `QueueStore.enqueue` (`enqueue.lua`)."""
        now = self._begin()
        when = batch.when
        run_at = now
        if when:
            run_at = now + int(when[1:]) if when[0] == "+" else int(when)
        scheduled = run_at > now
        state, ready_at = ("scheduled", run_at) if scheduled else ("queued", now)
        out: list[tuple[str, bool, str | None]] = []
        ready: list[str] = []
        for job_id, args, ukey in jobs:
            named = self._jobs.get(job_id) if batch.named else None
            if named is not None:
                out.append((job_id, False, None if named.task == batch.task else named.task))
                continue
            existing = self._holder(ukey) if ukey else None
            if existing is not None:
                out.append((existing, False, None))
                continue
            self._create(
                job_id,
                batch.task,
                args,
                batch.priority,
                batch.retries,
                batch.trace,
                ukey,
                now,
                state,
                ready_at,
            )
            if scheduled:
                self._scheduled.set(job_id, run_at)
            else:
                ready.append(job_id)
            out.append((job_id, True, None))
        if ready:
            self._enlist(batch.priority, ready)
        self._finish()
        return out

    async def claim(
        self,
        count: int,
        *,
        lease_ms: int,
        cap: int,
        result_ttl_ms: int,
        dead_ttl_ms: int,
        worker: str,
    ) -> tuple[int, list[Claimed]]:
        """See `QueueStore.claim` (`claim.lua`)."""
        now = self._begin()
        want = min(count, MAX_CLAIM)
        for job_id in self._scheduled.pop_due(now, MAX_CLAIM):
            self._push_ready(job_id, self._jobs[job_id], now, front=False)
        for job_id in self._leases.pop_due(now, MAX_CLAIM):
            job = self._jobs[job_id]
            if job.cancel:
                self._settle(
                    job_id, job, "cancelled", now, result_ttl_ms, error=b"cancelled while running"
                )
            elif job.tries > job.retries:
                self._bury(job_id, job, b"LeaseExpired: the worker stopped renewing its lease", now)
            else:
                self._push_ready(job_id, job, now, front=True)
        if dead_ttl_ms > 0:
            self._purge_before(now - dead_ttl_ms, MAX_CLAIM)
        if cap > 0:
            want = min(want, cap - len(self._leases))
        claimed: list[Claimed] = []
        if want > 0:
            for level in sorted(self._ready, reverse=True):
                ids = self._ready[level]
                while ids and len(claimed) < want:
                    job_id = ids.popleft()
                    job = self._jobs[job_id]
                    job.token += 1
                    job.tries += 1
                    job.state, job.started, job.worker = "active", now, worker
                    self._leases.set(job_id, now + lease_ms)
                    claimed.append(
                        Claimed(
                            job_id,
                            job.token,
                            job.task,
                            job.args,
                            now - job.ready_at,
                            job.trace,
                            job.tries,
                        )
                    )
                if not ids:
                    del self._ready[level]
                if len(claimed) >= want:
                    break
            # Full, with jobs left: pass the wake-up on to another idle worker.
            self._woken = len(claimed) >= want and bool(self._ready)
        heads = [at for at in (self._scheduled.first(), self._leases.first()) if at is not None]
        nearest = max(0, min(heads) - now) if heads else -1
        self._finish()
        return nearest, claimed

    async def ack(
        self, settlements: Iterable[Settlement], *, result_ttl_ms: int, unknown_limit: int = 0
    ) -> list[int]:
        """See `QueueStore.ack` (`ack.lua`)."""
        now = self._begin()
        out: list[int] = []
        ended = False
        for job_id, token, outcome, value, delay in settlements:
            job = self._jobs.get(job_id)
            if job is None or job.token != token or job.state != "active":
                out.append(0)
                continue
            self._leases.discard(job_id)
            ended = True
            code = 1
            if outcome == "c":
                self._settle(job_id, job, "completed", now, result_ttl_ms, result=encode(value))
            elif outcome == "f":
                if delay >= 0 and job.tries <= job.retries:
                    job.error = encode(value)
                    self._retry(job_id, job, now, delay)
                    code = 2
                else:
                    self._bury(job_id, job, encode(value), now)
                    code = 3
            elif outcome == "x":
                self._settle(job_id, job, "cancelled", now, result_ttl_ms, error=encode(value))
            elif outcome == "u":
                job.tries -= 1
                job.unknown += 1
                if job.unknown > unknown_limit:
                    self._bury(job_id, job, encode(value), now)
                    code = 3
                else:
                    self._retry(job_id, job, now, delay)
                    code = 2
            else:
                job.tries -= 1
                self._push_ready(job_id, job, now, front=True)
            out.append(code)
        if ended:
            # A worker held back by the queue-wide cap may claim again.
            self._woken = self._woken or bool(self._ready)
        self._finish()
        return out

    async def extend(
        self, leases: Sequence[tuple[str, int]], *, lease_ms: int
    ) -> tuple[list[str], list[str]]:
        """See `QueueStore.extend` (`extend.lua`)."""
        now = self._begin()
        lost: list[str] = []
        cancel: list[str] = []
        for job_id, token in leases:
            job = self._jobs.get(job_id)
            if job is not None and job.token == token and job.state == "active":
                self._leases.set(job_id, now + lease_ms)
                if job.cancel:
                    cancel.append(job_id)
            else:
                lost.append(job_id)
        return lost, cancel

    async def cancel(self, job_id: str, *, result_ttl_ms: int) -> str | None:
        """See `QueueStore.cancel` (`cancel.lua`)."""
        now = self._begin()
        job = self._jobs.get(job_id)
        if job is None:
            return None
        if job.state == "queued":
            self._unlist(job_id, job.level)
        elif job.state == "scheduled":
            self._scheduled.discard(job_id)
        elif job.state == "active":
            job.cancel = True
            return job.state
        else:
            return job.state
        self._settle(job_id, job, "cancelled", now, result_ttl_ms, error=b"cancelled before it ran")
        self._finish()
        return "cancelled"

    async def fire_cron(
        self, name: str, fire_ms: int, job_id: str, batch: Batch, args: bytes
    ) -> int:
        """See `QueueStore.fire_cron` (`fire_cron.lua`)."""
        now = self._begin()
        if now < fire_ms:
            return fire_ms - now
        if self._cron.get(name, -1) >= fire_ms:
            return -1
        self._cron[name] = fire_ms
        self._create(
            job_id, batch.task, args, batch.priority, batch.retries, "", "", now, "queued", now
        )
        self._enlist(batch.priority, [job_id])
        self._finish()
        return 0

    async def requeue(self, job_ids: Sequence[str]) -> int:
        """See `QueueStore.requeue` (`requeue.lua`)."""
        now = self._begin()
        count = 0
        for job_id in job_ids:
            if not self._dead.discard(job_id):
                continue
            job = self._jobs[job_id]
            job.tries, job.error, job.finished, job.unknown = 0, None, None, 0
            self._push_ready(job_id, job, now, front=False)
            count += 1
        self._finish()
        return count

    async def purge_dead(
        self, job_ids: Sequence[str] | None, *, older_than_ms: int | None, limit: int
    ) -> int:
        """See `QueueStore.purge_dead` (`purge.lua`)."""
        now = self._begin()
        if job_ids is not None:
            return self._purge(job_ids)
        cutoff = math.inf if older_than_ms is None else now - older_than_ms
        return self._purge_before(cutoff, limit)

    async def counts(self) -> tuple[int, int, int, int]:
        """See `QueueStore.counts` (`stats.lua`)."""
        self._begin()
        queued = sum(len(ids) for ids in self._ready.values())
        return queued, len(self._scheduled), len(self._leases), len(self._dead)

    async def dead_ids(self, limit: int) -> list[str]:
        """See `QueueStore.dead_ids`: as `ZRANGE dead 0 <limit - 1> REV` reads them."""
        self._begin()
        ordered = self._dead.ranked()[::-1]
        # A ZRANGE end below 0 counts from the end (so a limit of 0 reads them all).
        stop = limit if limit > 0 else len(ordered) + limit
        return ordered[:stop]

    async def job(self, job_id: str) -> StoredJob | None:
        """See `QueueStore.job`."""
        self._begin()
        job = self._jobs.get(job_id)
        if job is None:
            return None
        return StoredJob(
            id=job_id,
            task=job.task,
            state=job.state,
            priority=job.level,
            retries=job.retries,
            tries=job.tries,
            created_ms=job.created,
            started_ms=job.started,
            finished_ms=job.finished,
            error=None if job.error is None else job.error.decode(),
            result=job.result,
            cancel_requested=job.cancel,
            worker=job.worker,
        )

    async def aclose(self) -> None:
        """Nothing to release: the jobs stay while the store lives."""

    def __repr__(self) -> str:
        return f"<MemoryQueueStore jobs={len(self._jobs)}>"
