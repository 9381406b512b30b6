"""`QueueStoreContract`: the behaviour every `QueueStore` shows, as the memory reference.

The checks are plain `async def test_*` methods with bare asserts, so this module
needs no test framework; pytest collects them from a subclass named `Test...`
that provides one fixture: `store`, the store under test, holding no job. Every
check runs on the store's own clock: none waits for time to pass (a lease of 0 ms
has run out at once), so a store on a `FakeClock` that stands still passes too.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from scalepy.queue._memory import MemoryQueueStore
from scalepy.queue._store import (
    AnnouncingQueueStore,
    Batch,
    ConnectingQueueStore,
    OrderedAcksQueueStore,
    WakingQueueStore,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from scalepy.queue._store import Claimed, QueueStore

__all__ = ("QueueStoreContract",)

TTL = 60_000
"""Result TTL of every settlement, ms: long enough that no check sees it run out."""

WAIT = 5.0
"""The most a pushed notification (a wake-up, an announcement) may take to arrive, s."""

ARGS = b"[[],{}]"


def batch(
    task: str = "t", priority: int = 0, *, retries: int = 1, when: str = "", named: bool = False
) -> Batch:
    """The options of an `enqueue` call."""
    return Batch(task, priority, retries, when, f"trace-{task}", named)


async def add(
    store: QueueStore, *job_ids: str, **options: Any
) -> list[tuple[str, bool, str | None]]:
    """Enqueue jobs with these ids in one call (options: see `batch`; `key` a unique key)."""
    key = options.pop("key", "")
    return await store.enqueue(batch(**options), [(job_id, ARGS, key) for job_id in job_ids])


async def claim(
    store: QueueStore, count: int = 10, *, lease_ms: int = TTL, cap: int = 0
) -> list[Claimed]:
    """Claim up to `count` jobs as worker `w`, keeping dead jobs."""
    _, jobs = await store.claim(
        count, lease_ms=lease_ms, cap=cap, result_ttl_ms=TTL, dead_ttl_ms=0, worker="w"
    )
    return jobs


async def ack(store: QueueStore, job: Claimed, outcome: str, value: str, delay: int = 0) -> int:
    """Settle one attempt; return its code."""
    (code,) = await store.ack([(job.id, job.token, outcome, value, delay)], result_ttl_ms=TTL)
    return code


async def seen(store: QueueStore, job_id: str) -> tuple[Any, ...] | None:
    """A job as read back, without its times: what two stores must agree on."""
    job = await store.job(job_id)
    if job is None:
        return None
    return (
        job.task, job.state, job.priority, job.retries, job.tries,
        job.error, job.result, job.cancel_requested, job.worker,
    )  # fmt: skip


def attempt(job: Claimed) -> tuple[Any, ...]:
    """A claimed attempt without its wait time."""
    return (job.id, job.token, job.task, job.args, job.trace, job.tries)


async def observe(store: QueueStore) -> list[Any]:
    """Drive `store` through every operation; return what each answered (times left out)."""
    out: list[Any] = [
        await add(store, "a", "b", priority=1, retries=2),
        await add(store, "c", "d", key="k", retries=0),
        await add(store, "e", when="+3600000"),
        await add(store, "a", task="u", named=True),
        await store.counts(),
    ]
    a, b, c = await claim(store, 3)
    out += [[attempt(job) for job in (a, b, c)], await store.counts()]
    out += [await ack(store, a, "f", "boom"), await ack(store, b, "c", "ok")]
    out += [await ack(store, c, "f", "fatal"), await ack(store, b, "c", "again")]
    out += [await store.extend([(a.id, a.token)], lease_ms=TTL)]
    (a2,) = await claim(store, 1, lease_ms=0)
    (a3,) = await claim(store, 1)
    out += [attempt(a2), attempt(a3), await ack(store, a2, "c", "late")]
    out += [await store.cancel("a", result_ttl_ms=TTL), await store.cancel("e", result_ttl_ms=TTL)]
    out += [await store.extend([(a3.id, a3.token), ("zz", 1)], lease_ms=TTL)]
    out += [await ack(store, a3, "x", "stopped"), await store.cancel("a", result_ttl_ms=TTL)]
    out += [await store.dead_ids(10), await store.requeue(["c", "zz"]), await store.counts()]
    (c2,) = await claim(store, 1)
    out += [attempt(c2), await ack(store, c2, "r", ""), await store.counts()]
    (c3,) = await claim(store, 1)
    out += [await ack(store, c3, "f", "dead again", -1), await store.dead_ids(10)]
    out += [await store.purge_dead(None, older_than_ms=None, limit=5), await store.counts()]
    out += [[await seen(store, job_id) for job_id in ("a", "b", "c", "d", "e", "zz")]]
    return out


class QueueStoreContract:
    """The behaviour every `QueueStore` shows; subclass it to check a store of your own.

    Provide the fixture `store` (a store holding no job) and name the subclass
    `Test...`; the checks are async, so run them with pytest-asyncio
    (`asyncio_mode = "auto"`) or anyio. Optional abilities are checked only where
    the store declares them (`WakingQueueStore`, `AnnouncingQueueStore`,
    `OrderedAcksQueueStore`, `ConnectingQueueStore`).
    """

    async def test_jobs_are_created_and_read_back(self, store: QueueStore) -> None:
        """An enqueued job is queued with its batch's options; an unknown id reads as None."""
        assert [("a", True, None), ("b", True, None)] == await add(store, "a", "b", priority=3)
        job = await store.job("a")
        assert job is not None
        assert ("a", "t", "queued", 3, 1, 0) == (
            job.id, job.task, job.state, job.priority, job.retries, job.tries,
        )  # fmt: skip
        assert (None, None, None, None, False) == (
            job.started_ms, job.finished_ms, job.error, job.result, job.cancel_requested,
        )  # fmt: skip
        assert job.created_ms > 0
        assert await store.job("missing") is None
        assert (2, 0, 0, 0) == await store.counts()

    async def test_claims_come_by_priority_then_in_order(self, store: QueueStore) -> None:
        """The highest level first, in enqueue order within a level; each claim bumps tries."""
        await add(store, "a")
        await add(store, "b", "c", priority=5)
        await add(store, "d", priority=9)
        claimed = await claim(store, 3)
        assert ["d", "b", "c"] == [job.id for job in claimed]
        assert [("t", ARGS, "trace-t", 1)] * 3 == [
            (job.task, job.args, job.trace, job.tries) for job in claimed
        ]
        assert ["a"] == [job.id for job in await claim(store)]
        assert [] == await claim(store)
        job = await store.job("d")
        assert job is not None
        assert ("active", "w", True) == (job.state, job.worker, job.started_ms is not None)
        assert (0, 0, 4, 0) == await store.counts()

    async def test_outcomes_are_fenced_by_the_claim_token(self, store: QueueStore) -> None:
        """Only the current attempt settles its job; a settled job takes no second outcome."""
        await add(store, "a")
        (first,) = await claim(store, lease_ms=0)
        (second,) = await claim(store)  # the first lease ran out: reaped, claimed again
        assert (second.token > first.token, 2) == (True, second.tries)
        assert 0 == await ack(store, first, "c", "stale")
        assert 1 == await ack(store, second, "c", "fresh")
        assert 0 == await ack(store, second, "c", "twice")
        job = await store.job("a")
        assert job is not None
        assert ("completed", b"fresh", True) == (job.state, job.result, job.finished_ms is not None)
        assert (0, 0, 0, 0) == await store.counts()

    async def test_failures_retry_then_go_dead(self, store: QueueStore) -> None:
        """A failure retries while tries <= retries, later or at once; then the job is dead."""
        await add(store, "a", retries=1)
        (job,) = await claim(store)
        assert 2 == await ack(store, job, "f", "first", 3_600_000)
        assert ([], (0, 1, 0, 0)) == (await claim(store), await store.counts())
        await add(store, "b", retries=1)
        (job,) = await claim(store)
        assert 2 == await ack(store, job, "f", "first")
        (job,) = await claim(store)
        assert 3 == await ack(store, job, "f", "second")
        stored = await store.job("b")
        assert stored is not None
        assert ("dead", "second", 2) == (stored.state, stored.error, stored.tries)
        assert (["b"], (0, 1, 0, 1)) == (await store.dead_ids(10), await store.counts())

    async def test_dead_jobs_are_requeued_or_purged(self, store: QueueStore) -> None:
        """Dead jobs list newest first; requeue restores their tries; purge deletes them."""
        await add(store, "a", "b", "c", retries=0)
        for job in await claim(store, 3):
            assert 3 == await ack(store, job, "f", "x", -1)
        assert ["c", "b", "a"] == await store.dead_ids(10)
        assert ["c"] == await store.dead_ids(1)
        assert 1 == await store.requeue(["a", "missing"])
        stored = await store.job("a")
        assert stored is not None
        assert ("queued", 0, None) == (stored.state, stored.tries, stored.error)
        assert 1 == await store.purge_dead(["b", "a"], older_than_ms=None, limit=1)
        assert 0 == await store.purge_dead(None, older_than_ms=3_600_000, limit=10)
        assert 1 == await store.purge_dead(None, older_than_ms=None, limit=10)
        assert ([], None) == (await store.dead_ids(10), await store.job("b"))
        assert (1, 0, 0, 0) == await store.counts()

    async def test_release_and_unknown_tasks_do_not_count_as_tries(self, store: QueueStore) -> None:
        """A released job goes back first; a job of an unknown task is put back, then dead."""
        await add(store, "a", "b", retries=0)
        (a,) = await claim(store, 1)
        assert 1 == await ack(store, a, "r", "")
        (again,) = await claim(store, 1)
        assert ("a", 1) == (again.id, again.tries)
        (code,) = await store.ack(
            [(a.id, again.token, "u", "unknown task", 0)], result_ttl_ms=TTL, unknown_limit=1
        )
        assert 2 == code
        claimed = await claim(store, 2)
        assert ["b", "a"] == [job.id for job in claimed]  # put back behind b
        a = claimed[1]
        (code,) = await store.ack(
            [(a.id, a.token, "u", "unknown task", 0)], result_ttl_ms=TTL, unknown_limit=1
        )
        assert (3, ["a"]) == (code, await store.dead_ids(10))

    async def test_delayed_jobs_wait_for_their_time(self, store: QueueStore) -> None:
        """A job due in an hour is scheduled and says when; one due in the past is ready."""
        await add(store, "later", when="+3600000")
        await add(store, "past", when="1")
        assert ["past"] == [job.id for job in await claim(store)]
        nearest, claimed = await store.claim(
            10, lease_ms=TTL, cap=0, result_ttl_ms=TTL, dead_ttl_ms=0, worker="w"
        )
        assert ([], True) == (claimed, 0 < nearest <= 3_600_000)
        job = await store.job("later")
        assert job is not None
        assert ("scheduled", (0, 1, 1, 0)) == (job.state, await store.counts())

    async def test_a_unique_key_holds_one_live_job(self, store: QueueStore) -> None:
        """While a job with the key lives, enqueueing returns it; once it ends, a new one comes."""
        assert [("a", True, None), ("a", False, None)] == await store.enqueue(
            batch(), [("a", ARGS, "k"), ("b", ARGS, "k")]
        )
        (a,) = await claim(store)
        assert [("a", False, None)] == await add(store, "c", key="k")
        await ack(store, a, "c", "done")
        assert [("c", True, None)] == await add(store, "c", key="k")

    async def test_a_named_job_is_made_once(self, store: QueueStore) -> None:
        """A caller's id makes one job, kept after it ends; another task's job is named."""
        assert [("a", True, None)] == await add(store, "a", named=True)
        assert [("a", False, None)] == await add(store, "a", named=True, when="+5000")
        assert [("a", False, "t")] == await add(store, "a", task="u", named=True)
        (a,) = await claim(store)
        await ack(store, a, "c", "done")
        assert [("a", False, None)] == await add(store, "a", named=True)
        assert (0, 0, 0, 0) == await store.counts()

    async def test_the_cap_bounds_the_running_jobs(self, store: QueueStore) -> None:
        """With a cap, a claim takes only what keeps the queue's running jobs under it."""
        await add(store, "a", "b", "c")
        assert ["a"] == [job.id for job in await claim(store, 10, cap=1)]
        assert [] == await claim(store, 10, cap=1)
        assert ["b"] == [job.id for job in await claim(store, 10, cap=2)]

    async def test_leases_are_renewed_and_cancellation_reported(self, store: QueueStore) -> None:
        """Renewals report lost leases and asked-for cancellations; waiting jobs cancel at once."""
        await add(store, "a", "b", "c")
        await add(store, "d", when="+3600000")
        a, b = await claim(store, 2)
        assert ([], []) == await store.extend([(a.id, a.token)], lease_ms=TTL)
        assert "active" == await store.cancel("a", result_ttl_ms=TTL)
        assert (["b", "zz"], ["a"]) == await store.extend(
            [(a.id, a.token), (b.id, b.token + 1), ("zz", 1)], lease_ms=TTL
        )
        assert ["cancelled", "cancelled", None] == [
            await store.cancel(job_id, result_ttl_ms=TTL) for job_id in ("c", "d", "zz")
        ]
        assert 1 == await ack(store, a, "x", "cancelled while running")
        assert "cancelled" == await store.cancel("a", result_ttl_ms=TTL)
        job = await store.job("a")
        assert job is not None
        assert ("cancelled", "cancelled while running") == (job.state, job.error)
        assert (0, 0, 1, 0) == await store.counts()

    async def test_a_cron_fire_enqueues_once(self, store: QueueStore) -> None:
        """The first call for a past fire enqueues its job; later ones see it done."""
        fire = batch("cron")
        assert 0 == await store.fire_cron("every", 1000, "f1", fire, ARGS)
        assert -1 == await store.fire_cron("every", 1000, "f2", fire, ARGS)
        assert -1 == await store.fire_cron("every", 500, "f3", fire, ARGS)
        later = int(time.time() * 1000) + 3_600_000
        assert 0 < await store.fire_cron("every", later, "f4", fire, ARGS)
        assert ["f1"] == [job.id for job in await claim(store)]

    async def test_idle_workers_are_woken(self, store: QueueStore) -> None:
        """A `WakingQueueStore` ends a wait when a job is enqueued, and ends an idle one in time."""
        if not isinstance(store, WakingQueueStore):
            return
        waiting = asyncio.ensure_future(store.wait_for_jobs(60.0))
        await asyncio.sleep(0)  # the wait begins
        await add(store, "a")
        async with asyncio.timeout(WAIT):
            await waiting
        async with asyncio.timeout(WAIT):
            await store.wait_for_jobs(0.01)

    async def test_settled_jobs_are_announced(self, store: QueueStore) -> None:
        """An `AnnouncingQueueStore` tells a started feed which jobs settled."""
        if not isinstance(store, AnnouncingQueueStore):
            return
        heard: set[str] = set()
        all_heard = asyncio.Event()

        def on_settled(job_ids: list[str]) -> None:
            heard.update(job_ids)
            if {"a", "b"} <= heard:
                all_heard.set()

        feed = store.settled_feed(on_settled)
        await feed.start()
        try:
            await add(store, "a", "b", retries=0)
            a, b = await claim(store)
            await ack(store, a, "c", "ok")
            await ack(store, b, "f", "boom", -1)
            async with asyncio.timeout(WAIT):
                await all_heard.wait()
        finally:
            await feed.aclose()

    async def test_an_ordered_ack_runs_before_a_later_claim(self, store: QueueStore) -> None:
        """While an `OrderedAcksQueueStore` promises order, a claim sent after an ack sees it."""
        if not isinstance(store, OrderedAcksQueueStore):
            return
        await add(store, "a", retries=1)
        (job,) = await claim(store)
        assert 2 == await ack(store, job, "f", "retry now")
        (job,) = await claim(store)
        if not store.acks_ordered:
            return
        code, claimed = await asyncio.gather(ack(store, job, "r", ""), claim(store))
        assert (1, ["a"]) == (code, [job.id for job in claimed])

    async def test_a_connector_opens_the_same_queue_in_another_thread(
        self, store: QueueStore
    ) -> None:
        """A `ConnectingQueueStore` opened from another thread's loop sees the same jobs."""
        if not isinstance(store, ConnectingQueueStore):
            return
        await add(store, "a")
        (job,) = await claim(store)
        connect = store.connector()
        assert ([], []) == await asyncio.to_thread(_extend_in_a_loop, connect, job)

    async def test_agrees_with_the_memory_reference(self, store: QueueStore) -> None:
        """Every operation answers as on `MemoryQueueStore`, times left out."""
        expected = await observe(MemoryQueueStore())
        assert expected == await observe(store)


def _extend_in_a_loop(
    connect: Callable[[], QueueStore], job: Claimed
) -> tuple[list[str], list[str]]:
    """Open a store with `connect` in a new event loop, renew `job`'s lease, close it."""

    async def extend() -> tuple[list[str], list[str]]:
        opened = connect()
        try:
            return await opened.extend([(job.id, job.token)], lease_ms=TTL)
        finally:
            await opened.aclose()

    return asyncio.run(extend())
