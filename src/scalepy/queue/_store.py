"""`QueueStore`: a queue's state in Redis, changed only by the Lua scripts in `lua/`.

Every key of one queue extends `scalepy:queue:{name}`, so they share one hash tag
(one Redis Cluster slot) and each state change is one atomic script, timed by the
server's clock. `lua/prelude.lua` describes the keys and the job hash; it is
prepended to every other script.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from itertools import chain
from typing import TYPE_CHECKING, Any

from scalepy.backends.keys import KeySpace
from scalepy.backends.redis import Script, ScriptRegistry

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from redis.typing import EncodableT

    from scalepy.backends.redis import RedisClient

__all__ = ("Batch", "Claimed", "NewJob", "QueueStore", "Settlement", "StoredJob")

_KEYS = KeySpace("scalepy:queue")
_MAX_CLAIM = 1000  # jobs per claim: keeps each script call short and its reply small
_INFO_FIELDS = (
    "task", "state", "prio", "retries", "tries", "created", "started", "finished",
    "error", "result", "cancel", "worker",
)  # fmt: skip


@cache
def _scripts() -> dict[str, Script]:
    """Every script of `lua/`, each with the prelude in front, read on first use."""
    registry = ScriptRegistry("scalepy.queue")
    prelude = registry["prelude"].source
    return {
        name: Script(f"queue.{name}", prelude + registry[name].source)
        for name in registry
        if name != "prelude"
    }


NewJob = tuple[str, bytes, str]
"""A job to create: its id, serialized arguments and unique key (`""` for none)."""


@dataclass(frozen=True, slots=True)
class Batch:
    """What every job of one `enqueue.lua` call shares."""

    task: str
    priority: int
    retries: int
    when: str
    """`""` now, `"+<ms>"` after a delay, `"<ms>"` at a Unix time in ms."""
    trace: str


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


Settlement = tuple[str, int, str, "EncodableT", int]
"""What `ack.lua` takes per attempt: id, token, outcome code, value, retry delay in ms."""


@dataclass(frozen=True, slots=True)
class StoredJob:
    """A job hash as read back: every field, decoded to text or numbers."""

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


class QueueStore:
    """Runs one queue's scripts on a `RedisClient`; the only code that knows the keys.

    Args:
        client: The Redis connection.
        name: The queue's name: its hash tag, so any string works.
    """

    __slots__ = ("_client", "_keys", "_publish", "base", "channel", "wake_key")

    def __init__(self, client: RedisClient, name: str) -> None:
        self._client = client
        self.base = _KEYS.key(name)
        self._keys = (self.base,)
        self.channel = f"{self.base}:done"
        """Where settled job ids are published, space-separated."""
        self.wake_key = f"{self.base}:wake"
        """The list idle workers block on."""
        # A cluster routes a classic PUBLISH to every node; SPUBLISH stays in the slot.
        self._publish = "SPUBLISH" if client.is_cluster else "PUBLISH"

    @property
    def client(self) -> RedisClient:
        """The Redis connection."""
        return self._client

    async def _run(self, name: str, *args: EncodableT) -> Any:
        return await self._client.run_script(_scripts()[name], self._keys, (self._publish, *args))

    async def enqueue(self, batch: Batch, jobs: Sequence[NewJob]) -> list[tuple[str, bool]]:
        """Create `jobs`, all with the task and options of `batch`, in one script call.

        Returns:
            Per job, the id of the job holding it and whether it was created (false
            when a live job already held its unique key).
        """
        args: list[EncodableT] = [batch.task, batch.priority, batch.retries, batch.when]
        args.append(batch.trace)
        args += chain.from_iterable(jobs)
        reply: list[Any] = await self._run("enqueue", *args)
        return [(reply[i].decode(), reply[i + 1] == 1) for i in range(0, len(reply), 2)]

    async def claim(
        self, count: int, *, lease_ms: int, cap: int, result_ttl_ms: int, worker: str
    ) -> tuple[int, list[Claimed]]:
        """Promote due jobs, reap expired leases, then claim up to `count` jobs.

        Returns:
            Milliseconds until the next scheduled job or lease deadline (-1 if
            none), and the claimed jobs.
        """
        count = min(count, _MAX_CLAIM)
        reply: list[Any] = await self._run("claim", count, lease_ms, cap, result_ttl_ms, worker)
        claimed = [
            Claimed(
                reply[i].decode(),
                reply[i + 1],
                reply[i + 2].decode(),
                reply[i + 3],
                reply[i + 4],
                reply[i + 5].decode(),
                reply[i + 6],
            )
            for i in range(1, len(reply), 7)
        ]
        return reply[0], claimed

    async def ack(self, settlements: Iterable[Settlement], *, result_ttl_ms: int) -> list[int]:
        """Settle attempts, each fenced by its token.

        Returns:
            Per attempt: 0 lease lost, 1 settled, 2 scheduled for a retry, 3 dead.
        """
        args: list[EncodableT] = []
        for settlement in settlements:
            args += settlement
        reply: list[int] = await self._run("ack", result_ttl_ms, *args)
        return reply

    async def extend(
        self, leases: Sequence[tuple[str, int]], *, lease_ms: int
    ) -> tuple[list[str], list[str]]:
        """Renew leases held with the given tokens.

        Returns:
            The ids whose lease is lost, and those whose cancellation was requested.
        """
        args: list[EncodableT] = []
        for job_id, token in leases:
            args += (job_id, token)
        lost, cancel = await self._run("extend", lease_ms, *args)
        return [job_id.decode() for job_id in lost], [job_id.decode() for job_id in cancel]

    async def cancel(self, job_id: str, *, result_ttl_ms: int) -> str | None:
        """Cancel a job: at once if it waits, through its worker if it runs.

        Returns:
            Its state afterwards, or `None` if the job is unknown.
        """
        reply: bytes | None = await self._run("cancel", job_id, result_ttl_ms)
        return None if reply is None else reply.decode()

    async def fire_cron(
        self, name: str, fire_ms: int, job_id: str, batch: Batch, args: bytes
    ) -> int:
        """Enqueue job `job_id` (as `batch` says) for the fire at `fire_ms`, unless done.

        Returns:
            Milliseconds still to wait if the server's clock is behind `fire_ms`,
            0 if this call enqueued the job, -1 if the fire had happened already.
        """
        reply: int = await self._run(
            "fire_cron", name, fire_ms, job_id, batch.task, args, batch.priority, batch.retries
        )
        return reply

    async def requeue(self, job_ids: Sequence[str]) -> int:
        """Move dead jobs back to their ready lists with fresh retries.

        Returns:
            How many were re-queued (ids not in the dead-letter set are skipped).
        """
        if not job_ids:
            return 0
        reply: int = await self._run("requeue", *job_ids)
        return reply

    async def counts(self) -> tuple[int, int, int, int]:
        """Return how many jobs are queued, scheduled, active and dead."""
        queued, scheduled, active, dead = await self._run("stats")
        return queued, scheduled, active, dead

    async def dead_ids(self, limit: int) -> list[str]:
        """Return the ids of up to `limit` dead jobs, most recent first."""
        reply: list[bytes] = await self._client.execute(
            "ZRANGE", f"{self.base}:dead", 0, limit - 1, "REV"
        )
        return [job_id.decode() for job_id in reply]

    async def job(self, job_id: str) -> StoredJob | None:
        """Read a job's hash, or `None` if there is no such job (or it expired)."""
        f: list[bytes | None] = await self._client.execute(
            "HMGET", f"{self.base}:job:{job_id}", *_INFO_FIELDS
        )
        if f[1] is None:
            return None
        return StoredJob(
            id=job_id,
            task=_text(f[0]) or "",
            state=f[1].decode(),
            priority=int(f[2] or 0),
            retries=int(f[3] or 0),
            tries=int(f[4] or 0),
            created_ms=int(f[5] or 0),
            started_ms=_int(f[6]),
            finished_ms=_int(f[7]),
            error=_text(f[8]),
            result=f[9],
            cancel_requested=f[10] is not None,
            worker=_text(f[11]),
        )

    def __repr__(self) -> str:
        return f"<QueueStore {self.base!r}>"


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def _int(value: bytes | None) -> int | None:
    return None if value is None else int(value)
