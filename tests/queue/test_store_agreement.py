"""The memory store is the reference model of the Lua scripts: both agree, reply for reply.

A state machine drives a `MemoryQueueStore` and a `RedisQueueStore` (standalone,
then cluster) with the same random operations and checks every reply, the
counts after every step, and every job at the end. Leases, delays and TTLs are
either 0 or ten minutes long, so neither store's clock decides any outcome: a
lease of 0 has run out at the next claim, one of ten minutes never does. Dead
jobs are kept forever or ten minutes by claims, and expired by a claim keeping
them 1 ms only after both clocks moved on. Where the order of equal times would
depend on each store's clock (leases run out, deaths), the test keeps times
apart, compares no order, or takes every job the order would pick among.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from scalepy.backends import RedisClusterConfig, RedisConfig, parse_backend_url
from scalepy.queue import MAX_CLAIM, Batch, MemoryQueueStore, RedisQueueStore
from tests.queue.conftest import delete_store_keys

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from scalepy.queue import Claimed, QueueStore, Settlement, StoredJob

LONG = 600_000  # ms: no lease, delay or TTL this long runs out during a test
leases = st.sampled_from([LONG, LONG, 0])
ARGS = b"[[],{}]"

priorities = st.integers(0, 3)
ttls = st.sampled_from([0, LONG])
unique_keys = st.sampled_from(["", "", "k1", "k2"])


def _claimed(job: Claimed) -> tuple[Any, ...]:
    """A claim without its wait, which each store measures on its own clock."""
    return (job.id, job.token, job.task, job.args, job.trace, job.tries)


def _stored(job: StoredJob | None) -> tuple[Any, ...] | None:
    """A job with its times reduced to whether they are set."""
    if job is None:
        return None
    untimed = replace(job, created_ms=0, started_ms=None, finished_ms=None)
    return (untimed, job.started_ms is None, job.finished_ms is None)


class StoresAgree(RuleBasedStateMachine):
    """Random enqueues, claims, acks, renewals, cancels, cron fires, re-drives and purges."""

    def __init__(self, config: RedisConfig | RedisClusterConfig) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.memory = MemoryQueueStore()
        self.redis = RedisQueueStore.connect(config, f"test-{uuid.uuid4().hex}")
        self.ids: list[str] = []  # every id ever enqueued
        self.attempts: list[tuple[str, int]] = []  # (id, token) of every claim
        self.running: dict[str, int] = {}  # id -> token of the attempts not yet settled

    def both(self, call: Callable[[QueueStore], Awaitable[Any]]) -> Any:
        """Run `call` on both stores, check their replies agree, and return the reply."""
        expected = self.loop.run_until_complete(call(self.memory))
        actual = self.loop.run_until_complete(call(self.redis))
        assert expected == actual
        return actual

    @rule(
        task=st.sampled_from(["t", "u"]),
        priority=priorities,
        retries=st.integers(0, 2),
        when=st.sampled_from(["", "+0", "1", f"+{LONG}"]),
        keys=st.lists(unique_keys, min_size=1, max_size=3),
    )
    def enqueue(self, task: str, priority: int, retries: int, when: str, keys: list[str]) -> None:
        """Enqueue a batch of jobs, now or in ten minutes, some with unique keys."""
        batch = Batch(task, priority, retries, when, "trace" if priority else "")
        ids = [f"j{len(self.ids) + i}" for i in range(len(keys))]
        self.ids += ids
        jobs = [(job_id, ARGS, key) for job_id, key in zip(ids, keys, strict=True)]
        self.both(lambda store: store.enqueue(batch, jobs))

    @rule(
        data=st.data(),
        key=unique_keys,
        when=st.sampled_from(["", f"+{LONG}"]),
        task=st.sampled_from(["t", "u"]),
    )
    def enqueue_named(self, data: st.DataObject, key: str, when: str, task: str) -> None:
        """Enqueue a job under an id the caller chose: a new one, or one used already.

        An id held by a job of the other task comes back with that task's name.
        """
        job_id = data.draw(st.sampled_from([*self.ids, f"j{len(self.ids)}"]))
        if job_id not in self.ids:
            self.ids.append(job_id)
        batch = Batch(task, 0, 1, when, "", named=True)
        self.both(lambda store: store.enqueue(batch, [(job_id, ARGS, key)]))

    @rule(count=st.integers(0, 4), cap=st.integers(0, 3), lease=leases, ttl=ttls, dead_ttl=ttls)
    def claim(self, count: int, cap: int, lease: int, ttl: int, dead_ttl: int) -> None:
        """Claim jobs, with or without a queue-wide cap; reap the leases run out."""

        async def call(store: QueueStore) -> tuple[bool, list[tuple[Any, ...]]]:
            nearest, claimed = await store.claim(
                count, lease_ms=lease, cap=cap, result_ttl_ms=ttl, dead_ttl_ms=dead_ttl, worker="w"
            )
            return nearest < 0, [_claimed(job) for job in claimed]

        _, claimed = self.both(call)
        self.attempts += [(job[0], job[1]) for job in claimed]
        self.running.update((job[0], job[1]) for job in claimed)
        if lease == 0:
            self.reap(ttl)

    def reap(self, ttl: int) -> None:
        """Reap the leases that ran out, before any other can (reaped in time, then id order).

        Leases run out together only if one call set them: on one store two calls
        may fall in one ms, on the other not, and then they would reap in other orders.
        """

        async def call(store: QueueStore) -> bool:
            nearest, _ = await store.claim(
                0, lease_ms=LONG, cap=0, result_ttl_ms=ttl, dead_ttl_ms=0, worker="w"
            )
            return nearest < 0

        self.both(call)

    @rule(ttl=ttls)
    def expire_dead(self, ttl: int) -> None:
        """Let 2 ms pass, then claim keeping dead jobs 1 ms: every one goes, on both stores.

        Both clocks follow the wall clock, so each job died at least a ms ago on
        each; a sleep, as no event tells that a clock moved on.
        """
        time.sleep(0.002)

        async def call(store: QueueStore) -> int:
            await store.claim(0, lease_ms=LONG, cap=0, result_ttl_ms=ttl, dead_ttl_ms=1, worker="w")
            *_, dead = await store.counts()
            return dead

        assert 0 == self.both(call)

    @rule(data=st.data())
    def purge(self, data: st.DataObject) -> None:
        """Delete some jobs, dead or not."""
        job_ids = data.draw(st.lists(st.sampled_from([*self.ids, "unknown"]), max_size=3))
        self.both(lambda store: store.purge_dead(job_ids, older_than_ms=None, limit=1))

    @rule(older_than=st.sampled_from([None, 0, LONG]))
    def purge_by_age(self, older_than: int | None) -> None:
        """Delete the dead jobs of any age, or dead for 0 ms or ten minutes at least.

        The limit takes them all: which of them died first may differ between clocks.
        """
        self.both(lambda store: store.purge_dead(None, older_than_ms=older_than, limit=MAX_CLAIM))

    @precondition(lambda self: self.running)
    @rule(
        data=st.data(),
        outcome=st.sampled_from(["c", "f", "x", "r", "u"]),
        delay=st.sampled_from([0, 0, -1, LONG]),
        ttl=ttls,
        unknown_limit=st.integers(0, 2),
    )
    def ack(
        self, data: st.DataObject, outcome: str, delay: int, ttl: int, unknown_limit: int
    ) -> None:
        """Settle running attempts in one batch, as a worker does (`u`: put back, or buried)."""
        picked = data.draw(st.lists(st.sampled_from(sorted(self.running.items())), min_size=1))
        settlements: list[Settlement] = [
            (i, token, outcome, f"{outcome}:{i}", delay) for i, token in picked
        ]
        self.settle(settlements, ttl, unknown_limit)

    @precondition(lambda self: self.attempts)
    @rule(data=st.data(), skew=st.sampled_from([0, -1, 1]), ttl=ttls)
    def ack_stale(self, data: st.DataObject, skew: int, ttl: int) -> None:
        """Complete attempts of any age, some under tokens never issued."""
        picked = data.draw(st.lists(st.sampled_from(self.attempts), min_size=1, max_size=3))
        self.settle([(i, token + skew, "c", b"1", 0) for i, token in picked], ttl)

    def settle(self, settlements: list[Settlement], ttl: int, unknown_limit: int = 0) -> None:
        """Ack `settlements` on both; the attempts settled are no longer running."""
        codes = self.both(
            lambda store: store.ack(settlements, result_ttl_ms=ttl, unknown_limit=unknown_limit)
        )
        for (job_id, token, *_), code in zip(settlements, codes, strict=True):
            if code and self.running.get(job_id) == token:
                del self.running[job_id]

    @precondition(lambda self: self.attempts)
    @rule(data=st.data(), skew=st.sampled_from([0, 0, 1]), lease=leases, ttl=ttls)
    def extend(self, data: st.DataObject, skew: int, lease: int, ttl: int) -> None:
        """Renew some leases, some under stale tokens."""
        picked = data.draw(st.lists(st.sampled_from(self.attempts), min_size=1, max_size=3))
        held = [(job_id, token + skew) for job_id, token in picked]
        self.both(lambda store: store.extend(held, lease_ms=lease))
        if lease == 0:
            self.reap(ttl)

    @rule(data=st.data(), ttl=ttls)
    def cancel(self, data: st.DataObject, ttl: int) -> None:
        """Cancel a job, known or not."""
        job_id = data.draw(st.sampled_from([*self.ids, "unknown"]))
        self.both(lambda store: store.cancel(job_id, result_ttl_ms=ttl))

    @rule(data=st.data())
    def requeue(self, data: st.DataObject) -> None:
        """Re-drive some jobs, dead or not."""
        job_ids = data.draw(st.lists(st.sampled_from([*self.ids, "unknown"]), max_size=3))
        self.both(lambda store: store.requeue(job_ids))

    @rule(name=st.sampled_from(["a", "b"]), fire=st.sampled_from([1000, 2000]), level=priorities)
    def fire_cron(self, name: str, fire: int, level: int) -> None:
        """Fire a cron schedule at a time past on both clocks, maybe again."""
        job_id = f"cron-{name}-{fire}"
        batch = Batch("t", level, 1, "", "")
        if self.both(lambda store: store.fire_cron(name, fire, job_id, batch, ARGS)) == 0:
            self.ids.append(job_id)

    @rule(limit=st.integers(-1, 4))
    def dead_ids(self, limit: int) -> None:
        """List dead jobs: as many, and the same ones when all are listed.

        Which died first depends on each store's clock when deaths fall in one ms
        (ties go by id), so the order is not compared.
        """

        async def call(store: QueueStore) -> tuple[int, list[str] | None]:
            ids = await store.dead_ids(limit)
            *_, dead = await store.counts()
            return len(ids), sorted(ids) if len(ids) == dead else None

        self.both(call)

    @invariant()
    def counts_agree(self) -> None:
        """Both hold as many queued, scheduled, active and dead jobs."""
        self.both(lambda store: store.counts())

    def teardown(self) -> None:
        """Check every job agrees, then delete the Redis keys."""
        try:

            async def jobs(store: QueueStore) -> list[Any]:
                return [_stored(await store.job(job_id)) for job_id in self.ids]

            self.both(jobs)
        finally:
            self.loop.run_until_complete(delete_store_keys(self.redis))
            self.loop.run_until_complete(self.redis.aclose())
            self.loop.close()


AGREEMENT = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_memory_and_redis_stores_agree(queue_url: str) -> None:
    """On random operation sequences, the memory store answers as the scripts do."""
    parsed = parse_backend_url(queue_url)
    assert isinstance(parsed, RedisConfig | RedisClusterConfig)
    config = parsed

    class OnThisServer(StoresAgree):
        def __init__(self) -> None:
            super().__init__(config)

    run_state_machine_as_test(OnThisServer, settings=AGREEMENT)
