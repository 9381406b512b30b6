"""`RedisQueueStore`: a queue's state in Redis, changed only by the Lua scripts in `lua/`.

Every key of one queue extends `scalepy:queue:{name}`, so they share one hash tag
(one Redis Cluster slot) and each state change is one atomic script, timed by the
server's clock. `lua/prelude.lua` describes the keys and the job hash; it is
prepended to every other script. Idle workers listen to the `wake` channel, and
settled job ids are published on the `done` channel: both subscriptions ride the
client's connection (see `scalepy.backends.redis.Subscription`), so a worker holds
no connection of its own besides its heartbeat thread's.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from functools import cache, partial
from itertools import chain
from typing import TYPE_CHECKING, Any

from scalepy.backends.keys import KeySpace
from scalepy.backends.redis import RedisClient, Script, ScriptRegistry, Subscription
from scalepy.errors import BackendError
from scalepy.queue._store import MAX_CLAIM, Claimed, StoredJob

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from redis.typing import EncodableT

    from scalepy.backends import RedisClusterConfig, RedisConfig
    from scalepy.queue._store import Batch, NewJob, QueueStore, Settlement
    from scalepy.telemetry import Instrumentation

__all__ = ("RedisQueueStore",)

_KEYS = KeySpace("scalepy:queue")
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


class RedisQueueStore:
    """Runs one queue's scripts on a `RedisClient`; the only code that knows the keys.

    It has every ability of `_store.py`: it wakes idle workers (a channel they listen to),
    announces settled jobs (pub/sub), orders acks (one pipelined connection)
    and opens itself on a client of its own for the heartbeat thread.

    Args:
        client: The Redis connection.
        name: The queue's name: its hash tag, so any string works.
        owns_client: Close `client` in `aclose()`.
    """

    __slots__ = (
        "_acks_ordered",
        "_client",
        "_keys",
        "_name",
        "_owns_client",
        "_publish",
        "_wake",
        "_wake_loop",
        "_woken",
        "base",
        "channel",
        "wake_channel",
    )

    def __init__(self, client: RedisClient, name: str, *, owns_client: bool = False) -> None:
        self._client = client
        self._owns_client = owns_client
        self._name = name
        self.base = _KEYS.key(name)
        self._keys = (self.base,)
        self.channel = f"{self.base}:done"
        """Where settled job ids are published, space-separated."""
        self.wake_channel = f"{self.base}:wake"
        """Where a message says jobs became ready, for idle workers."""
        self._woken = asyncio.Event()  # a wake message came since the last claim was sent
        self._wake: Subscription | None = None  # started by the first wait
        self._wake_loop: asyncio.AbstractEventLoop | None = None  # where it was started
        # A cluster routes a classic PUBLISH to every node; SPUBLISH stays in the slot.
        self._publish = "SPUBLISH" if client.is_cluster else "PUBLISH"
        self._acks_ordered = False  # until the ack script answers: it may not be loaded

    @classmethod
    def connect(
        cls,
        config: RedisConfig | RedisClusterConfig,
        name: str,
        *,
        instrumentation: Instrumentation | None = None,
    ) -> RedisQueueStore:
        """Make a store of queue `name` on a new client for `config` (connected on first use)."""
        return cls(RedisClient(config, instrumentation=instrumentation), name, owns_client=True)

    @property
    def client(self) -> RedisClient:
        """The Redis connection."""
        return self._client

    @property
    def acks_ordered(self) -> bool:
        """See `OrderedAcksQueueStore`: the ack script answered, and nothing failed since."""
        return self._acks_ordered

    async def _run(self, name: str, *args: EncodableT) -> Any:
        try:
            return await self._client.run_script(
                _scripts()[name], self._keys, (self._publish, *args)
            )
        except BackendError:
            # Perhaps a restart or a failover: the server may have lost its scripts.
            self._acks_ordered = False
            raise

    async def enqueue(
        self, batch: Batch, jobs: Sequence[NewJob]
    ) -> list[tuple[str, bool, str | None]]:
        """See `QueueStore.enqueue`: one `enqueue.lua` call."""
        args: list[EncodableT] = [batch.task, batch.priority, batch.retries, batch.when]
        args += (batch.trace, "1" if batch.named else "")
        args += chain.from_iterable(jobs)
        reply: list[Any] = await self._run("enqueue", *args)
        return [
            (reply[i].decode(), reply[i + 1] == 1, _other_task(reply[i + 1]))
            for i in range(0, len(reply), 2)
        ]

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
        """See `QueueStore.claim`: one `claim.lua` call."""
        count = min(count, MAX_CLAIM)
        # A wake-up older than this claim is answered by it; a later one comes after
        # its reply (same connection, same order) and ends the next wait.
        self._woken.clear()
        reply: list[Any] = await self._run(
            "claim", count, lease_ms, cap, result_ttl_ms, worker, dead_ttl_ms
        )
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

    async def ack(
        self, settlements: Iterable[Settlement], *, result_ttl_ms: int, unknown_limit: int = 0
    ) -> list[int]:
        """See `QueueStore.ack`: one `ack.lua` call."""
        args: list[EncodableT] = []
        for settlement in settlements:
            args += settlement
        reply: list[int] = await self._run("ack", result_ttl_ms, unknown_limit, *args)
        self._acks_ordered = True
        return reply

    async def extend(
        self, leases: Sequence[tuple[str, int]], *, lease_ms: int
    ) -> tuple[list[str], list[str]]:
        """See `QueueStore.extend`: one `extend.lua` call."""
        args: list[EncodableT] = []
        for job_id, token in leases:
            args += (job_id, token)
        lost, cancel = await self._run("extend", lease_ms, *args)
        return [job_id.decode() for job_id in lost], [job_id.decode() for job_id in cancel]

    async def cancel(self, job_id: str, *, result_ttl_ms: int) -> str | None:
        """See `QueueStore.cancel`: one `cancel.lua` call."""
        reply: bytes | None = await self._run("cancel", job_id, result_ttl_ms)
        return None if reply is None else reply.decode()

    async def fire_cron(
        self, name: str, fire_ms: int, job_id: str, batch: Batch, args: bytes
    ) -> int:
        """See `QueueStore.fire_cron`: one `fire_cron.lua` call."""
        reply: int = await self._run(
            "fire_cron", name, fire_ms, job_id, batch.task, args, batch.priority, batch.retries
        )
        return reply

    async def requeue(self, job_ids: Sequence[str]) -> int:
        """See `QueueStore.requeue`: one `requeue.lua` call."""
        if not job_ids:
            return 0
        reply: int = await self._run("requeue", *job_ids)
        return reply

    async def purge_dead(
        self, job_ids: Sequence[str] | None, *, older_than_ms: int | None, limit: int
    ) -> int:
        """See `QueueStore.purge_dead`: one `purge.lua` call."""
        if job_ids is not None and not job_ids:
            return 0
        age = "" if older_than_ms is None else older_than_ms
        reply: int = await self._run("purge", age, limit, *(job_ids or ()))
        return reply

    async def counts(self) -> tuple[int, int, int, int]:
        """See `QueueStore.counts`: one `stats.lua` call."""
        queued, scheduled, active, dead = await self._run("stats")
        return queued, scheduled, active, dead

    async def dead_ids(self, limit: int) -> list[str]:
        """See `QueueStore.dead_ids`."""
        reply: list[bytes] = await self._client.execute(
            "ZRANGE", f"{self.base}:dead", 0, limit - 1, "REV"
        )
        return [job_id.decode() for job_id in reply]

    async def job(self, job_id: str) -> StoredJob | None:
        """See `QueueStore.job`: the job's hash."""
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

    async def wait_for_jobs(self, seconds: float) -> None:
        """Wait for a message on the wake channel since the last claim, `seconds` at most.

        The first wait in an event loop subscribes instead, and returns: the next
        claim then misses no wake-up. While not subscribed (Redis lost), a wait
        lasts its `seconds`: a poll.
        """
        loop = asyncio.get_running_loop()
        if self._wake_loop is not loop:
            self._wake_loop, self._woken = loop, asyncio.Event()
            if self._wake is None:
                self._wake = Subscription(
                    self._client,
                    self.wake_channel,
                    lambda _: self._woken.set(),
                    sharded=self._client.is_cluster,
                )
            await self._wake.start()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), seconds)

    def settled_feed(self, on_settled: Callable[[list[str]], None]) -> Subscription:
        """A subscription to the channel settled job ids are published on."""
        return Subscription(
            self._client,
            self.channel,
            lambda data: on_settled(data.decode().split()),
            sharded=self._client.is_cluster,
        )

    def connector(self) -> Callable[[], QueueStore]:
        """Opens a store of this queue on a client of its own (for the heartbeat thread).

        Its connection is named after the client's with `:heartbeat` appended, so
        `CLIENT LIST` tells it from the process's shared connection.
        """
        config = self._client.config
        if config.client_name:
            config = replace(config, client_name=f"{config.client_name}:heartbeat")
        return partial(RedisQueueStore.connect, config, self._name)

    async def aclose(self) -> None:
        """Stop listening for wake-ups; close the client if this store owns it."""
        if self._wake is not None:
            await self._wake.aclose()
        if self._owns_client:
            await self._client.aclose()

    def __repr__(self) -> str:
        return f"<RedisQueueStore {self.base!r}>"


def _other_task(code: int | bytes) -> str | None:
    """The task `enqueue.lua` names in place of 0 when a job of another task held the id."""
    return code.decode() if isinstance(code, bytes) else None


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def _int(value: bytes | None) -> int | None:
    return None if value is None else int(value)
