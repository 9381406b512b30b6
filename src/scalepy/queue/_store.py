"""The contracts a queue backend implements, one per ability, and the records they carry.

`QueueStore` is what every backend offers: one queue's jobs, each change atomic
and fenced by tokens where it must be. The queue assumes nothing more of a store.
Each further ability is a protocol of its own, so a store cannot claim one it
lacks, and the queue falls back where one is missing (`_abilities.py` asks, once):

- `WakingQueueStore`: idle workers wait until jobs become ready (without it,
  they poll every `Worker.poll_interval`);
- `AnnouncingQueueStore`: a feed of settled job ids wakes `Job.result()` callers
  (without it, each re-reads its job every 0.1 s);
- `OrderedAcksQueueStore`: an ack sent now runs before a claim sent after it, so
  a worker need not wait for its acks' replies before claiming again;
- `ConnectingQueueStore`: the store opens itself on a connection of its own, so
  a worker renews leases from a thread that a job blocking its event loop cannot
  stop (without it, from a task of that loop).

`RedisQueueStore` (`_redis.py`) has every ability, each operation one atomic Lua
script timed by the server's clock; `MemoryQueueStore` (`_memory.py`), one
process's reference model of the same scripts, has all but the connector: its
state lives in one event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

__all__ = (
    "MAX_CLAIM",
    "AnnouncingQueueStore",
    "Batch",
    "Claimed",
    "ConnectingQueueStore",
    "NewJob",
    "OrderedAcksQueueStore",
    "QueueStore",
    "SettledFeed",
    "Settlement",
    "StoredJob",
    "WakingQueueStore",
)

MAX_CLAIM = 1000
"""Jobs per claim, and jobs promoted, reaped or expired from the dead set per claim.

Keeps each call short.
"""

NewJob = tuple[str, bytes, str]
"""A job to create: its id, serialized arguments and unique key (`""` for none)."""


@dataclass(frozen=True, slots=True)
class Batch:
    """What every job of one `enqueue` call shares."""

    task: str
    priority: int
    retries: int
    when: str
    """`""` now, `"+<ms>"` after a delay, `"<ms>"` at a Unix time in ms."""
    trace: str
    named: bool = False
    """The caller chose the jobs' ids: a job that exists already is returned, not made."""


@dataclass(slots=True)
class Claimed:
    """A job a worker claimed: its lease is fenced by `token`."""

    id: str
    token: int
    task: str
    args: bytes
    waited_ms: int
    trace: str
    tries: int


Settlement = tuple[str, int, str, bytes | str, int]
"""What `ack` takes per attempt: id, token, outcome code, value, retry delay in ms.

Outcomes: `c` completed (value: the result), `f` failed (value: the error;
retried after the delay while tries <= retries, a negative delay never retries),
`x` cancelled (value: why), `r` released by a worker shutting down (back to the
front of the queue, the attempt not counted), `u` the worker does not know the
task (put back after the delay, the attempt not counted; dead-lettered with the
value as its error once put back more than `unknown_limit` times).
"""


@dataclass(frozen=True, slots=True)
class StoredJob:
    """A job as read back: every field, decoded to text or numbers."""

    id: str
    task: str
    state: str
    priority: int
    retries: int
    tries: int
    created_ms: int
    started_ms: int | None
    finished_ms: int | None
    error: str | None
    result: bytes | None
    cancel_requested: bool
    worker: str | None


class SettledFeed(Protocol):
    """Hands the ids of settled jobs to a callback, from `start()` until `aclose()`."""

    async def start(self) -> None:
        """Start listening (again, after `aclose()`); idempotent."""
        ...

    async def aclose(self) -> None:
        """Stop listening."""
        ...


@runtime_checkable
class QueueStore(Protocol):
    """One queue's state: every change is atomic, and fenced by tokens where it must be.

    A job is `queued` (on the ready list of its priority level), `scheduled`
    (delayed, or backing off), `active` (leased under a token that every claim
    bumps), or ended: `completed` and `cancelled` jobs are kept for the result
    TTL, `dead` ones until re-driven or purged (by `purge_dead`, or by a claim
    once older than its `dead_ttl_ms`). Times are Unix ms on the store's clock.
    """

    async def enqueue(
        self, batch: Batch, jobs: Sequence[NewJob]
    ) -> list[tuple[str, bool, str | None]]:
        """Create `jobs`, all with the task and options of `batch`, atomically.

        Returns:
            Per job, the id of the job holding it; whether it was created (false
            when a live job already held its unique key or, for a `named` batch,
            when a job with its id existed, live or ended and kept); and the task
            of the job that had its id when that is not `batch.task` (job ids are
            queue-wide), else `None`.
        """
        ...

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
        """Promote due jobs, reap expired leases, expire dead jobs, then claim up to `count`.

        Args:
            count: Jobs wanted; at most `MAX_CLAIM` are claimed.
            lease_ms: The lease of each claimed job.
            cap: The most jobs the whole queue may run at once, 0 for no limit.
            result_ttl_ms: How long reaped jobs that end cancelled are kept.
            dead_ttl_ms: Dead jobs that died this long ago or longer are deleted
                (the oldest `MAX_CLAIM` per call); 0 keeps them.
            worker: The claiming worker's name, kept on the job.

        Returns:
            Milliseconds until the next scheduled job or lease deadline (-1 if
            none), and the claimed jobs, highest priority level first.
        """
        ...

    async def ack(
        self, settlements: Iterable[Settlement], *, result_ttl_ms: int, unknown_limit: int = 0
    ) -> list[int]:
        """Settle attempts, each fenced by its token.

        Args:
            settlements: The attempts' outcomes.
            result_ttl_ms: How long jobs that end completed or cancelled are kept.
            unknown_limit: How many times a job of a task unknown to its worker (`u`)
                is put back before it is dead-lettered.

        Returns:
            Per attempt: 0 lease lost, 1 settled, 2 scheduled for a retry (or put
            back), 3 dead.
        """
        ...

    async def extend(
        self, leases: Sequence[tuple[str, int]], *, lease_ms: int
    ) -> tuple[list[str], list[str]]:
        """Renew leases held with the given tokens.

        Returns:
            The ids whose lease is lost, and those whose cancellation was requested.
        """
        ...

    async def cancel(self, job_id: str, *, result_ttl_ms: int) -> str | None:
        """Cancel a job: at once if it waits, through its worker if it runs.

        Returns:
            Its state afterwards, or `None` if the job is unknown.
        """
        ...

    async def fire_cron(
        self, name: str, fire_ms: int, job_id: str, batch: Batch, args: bytes
    ) -> int:
        """Enqueue job `job_id` (as `batch` says) for the fire at `fire_ms`, unless done.

        Returns:
            Milliseconds still to wait if the store's clock is behind `fire_ms`,
            0 if this call enqueued the job, -1 if the fire had happened already.
        """
        ...

    async def requeue(self, job_ids: Sequence[str]) -> int:
        """Move dead jobs back to their ready lists with fresh retries.

        Returns:
            How many were re-queued (ids not in the dead-letter set are skipped).
        """
        ...

    async def purge_dead(
        self, job_ids: Sequence[str] | None, *, older_than_ms: int | None, limit: int
    ) -> int:
        """Delete dead jobs for good: `job_ids`, or else the oldest, atomically.

        Args:
            job_ids: The jobs to delete (ids not dead are skipped); `None` to pick
                them by age instead.
            older_than_ms: Without ids, only jobs that died this long ago or longer;
                `None` for any age.
            limit: Without ids, how many at most (`>= 1`).

        Returns:
            How many jobs were deleted.
        """
        ...

    async def counts(self) -> tuple[int, int, int, int]:
        """Return how many jobs are queued, scheduled, active and dead."""
        ...

    async def dead_ids(self, limit: int) -> list[str]:
        """Return the ids of up to `limit` dead jobs, most recent first."""
        ...

    async def job(self, job_id: str) -> StoredJob | None:
        """Read a job, or `None` if there is no such job (or it expired)."""
        ...

    async def aclose(self) -> None:
        """Release the connection the store owns, if any."""
        ...


@runtime_checkable
class WakingQueueStore(QueueStore, Protocol):
    """A store that wakes idle workers when jobs become ready, instead of their polling."""

    async def wait_for_jobs(self, seconds: float) -> None:
        """Wait up to `seconds`, less when jobs became ready since the last wait.

        Never raises: a failure only costs the wait.
        """
        ...


@runtime_checkable
class AnnouncingQueueStore(QueueStore, Protocol):
    """A store that announces the jobs it settles, so result waiters wake at once."""

    def settled_feed(self, on_settled: Callable[[list[str]], None]) -> SettledFeed:
        """A feed calling `on_settled` with the ids of jobs as they settle.

        A job settles when it ends completed, cancelled or dead. An id may be
        announced more than once, or (across a reconnect) not at all: waiters
        re-read their job anyway, only less often.
        """
        ...


@runtime_checkable
class OrderedAcksQueueStore(QueueStore, Protocol):
    """A store that may promise that acks run in the order they and claims were sent."""

    @property
    def acks_ordered(self) -> bool:
        """Whether an `ack` sent now runs before a `claim` sent after it.

        False while the store cannot promise it: a Redis store until its ack
        script was last answered without a failure since (a server that lost its
        scripts answers NOSCRIPT and runs the claim pipelined behind it before the
        resent script). Outcomes are then taken before the next claim is sent, as
        they always are on a store without this ability.
        """
        ...


@runtime_checkable
class ConnectingQueueStore(QueueStore, Protocol):
    """A store that can open itself again on a connection of its own, in another thread."""

    def connector(self) -> Callable[[], QueueStore]:
        """How to open this queue's store on a connection of its own, from another thread.

        Returns:
            A function to call in that thread's event loop; the store it returns
            is closed there with `aclose()`.
        """
        ...
