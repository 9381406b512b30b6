"""The stores, driven directly: claims, fencing, reaping, retries, cancellation, cron, purges.

Written for the Lua scripts; most also run on the memory store (`@ALL_BACKENDS`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from scalepy.backends.redis import Subscription
from scalepy.queue import Batch
from tests.queue.conftest import ALL_BACKENDS, redis_store
from tests.support.polling import eventually

if TYPE_CHECKING:
    from scalepy.queue import Claimed, NewJob, Queue, QueueStore

TTL = 60_000


def new(
    job_id: str,
    priority: int = 0,
    *,
    retries: int = 2,
    when: str = "",
    key: str = "",
    named: bool = False,
) -> tuple[Batch, NewJob]:
    """A job of task `t` with no arguments (`named`: its id is the caller's)."""
    return Batch("t", priority, retries, when, "", named), (job_id, b"[[],{}]", key)


async def enqueue(
    store: QueueStore, jobs: list[tuple[Batch, NewJob]]
) -> list[tuple[str, bool, str | None]]:
    """Enqueue each job in order, one script call each."""
    return [held for batch, job in jobs for held in await store.enqueue(batch, [job])]


async def claim(
    store: QueueStore,
    count: int = 10,
    *,
    lease_ms: int = 60_000,
    cap: int = 0,
    dead_ttl_ms: int = 0,
) -> list[Claimed]:
    """Claim up to `count` jobs as worker `w` (keeping dead jobs, unless told otherwise)."""
    _, jobs = await store.claim(
        count, lease_ms=lease_ms, cap=cap, result_ttl_ms=TTL, dead_ttl_ms=dead_ttl_ms, worker="w"
    )
    return jobs


async def kill(store: QueueStore, *job_ids: str) -> None:
    """Claim the waiting jobs and fail each for good, in one ack (one time of death)."""
    claimed = {job.id: job for job in await claim(store, len(job_ids))}
    codes = await store.ack(
        [(job_id, claimed[job_id].token, "f", "E", -1) for job_id in job_ids], result_ttl_ms=TTL
    )
    assert [3] * len(job_ids) == codes


async def state(store: QueueStore, job_id: str) -> str | None:
    """The job's state, or None if it is gone."""
    job = await store.job(job_id)
    return None if job is None else job.state


@pytest.fixture
def store(queue: Queue) -> QueueStore:
    """The queue's store."""
    return queue.store


@ALL_BACKENDS
async def test_claims_higher_priority_first_and_fifo_within_a_level(store: QueueStore) -> None:
    """Jobs come out by priority level, highest first, then in enqueue order."""
    await enqueue(store, [new("a"), new("b", 5), new("c"), new("d", 9), new("e", 5)])
    claimed = await claim(store, 3) + await claim(store, 10)
    assert ["d", "b", "e", "a", "c"] == [job.id for job in claimed]
    assert [1] * 5 == [job.token for job in claimed]
    assert (0, 0, 5, 0) == await store.counts()


@ALL_BACKENDS
async def test_claim_reports_the_wait_and_records_the_worker(store: QueueStore) -> None:
    """A claimed job carries its task, arguments and wait; the job names its worker."""
    await enqueue(store, [new("a")])
    (job,) = await claim(store)
    assert ("t", b"[[],{}]", "", 1) == (job.task, job.args, job.trace, job.tries)
    assert 0 <= job.waited_ms < 5_000
    stored = await store.job("a")
    assert stored is not None
    assert ("active", "w", 1) == (stored.state, stored.worker, stored.tries)


@ALL_BACKENDS
async def test_claim_respects_the_queue_wide_cap(store: QueueStore) -> None:
    """With a cap, the jobs leased over all workers never exceed it."""
    await enqueue(store, [new(str(i)) for i in range(5)])
    assert 2 == len(await claim(store, 10, cap=2))
    assert [] == await claim(store, 10, cap=2)
    assert 3 == len(await claim(store, 10))


@ALL_BACKENDS
async def test_only_the_current_token_settles_an_attempt(store: QueueStore) -> None:
    """An outcome under a stale token is refused, and a job settles only once."""
    await enqueue(store, [new("a")])
    (job,) = await claim(store)
    stale = (job.id, job.token - 1, "c", b"1", 0)
    assert [0] == await store.ack([stale], result_ttl_ms=TTL)
    assert [1, 0] == await store.ack(
        [(job.id, job.token, "c", b"2", 0), (job.id, job.token, "c", b"3", 0)], result_ttl_ms=TTL
    )
    stored = await store.job("a")
    assert stored is not None
    assert ("completed", b"2") == (stored.state, stored.result)
    assert (0, 0, 0, 0) == await store.counts()


async def test_completed_jobs_expire_after_the_result_ttl(queue: Queue) -> None:
    """A settled job keeps its result for the TTL; a TTL of 0 deletes it at once."""
    store = redis_store(queue)
    await enqueue(store, [new("a"), new("b")])
    a, b = await claim(store)
    await store.ack([(a.id, a.token, "c", b"1", 0)], result_ttl_ms=TTL)
    await store.ack([(b.id, b.token, "c", b"1", 0)], result_ttl_ms=0)
    ttl = await queue.client.execute("PTTL", f"{store.base}:job:a")
    assert 0 < ttl <= TTL
    assert None is await store.job("b")


@ALL_BACKENDS
async def test_a_failure_with_retries_left_is_retried_after_its_delay(store: QueueStore) -> None:
    """A failed attempt waits out its backoff in the scheduled set, then is claimable."""
    await enqueue(store, [new("a", retries=1)])
    (job,) = await claim(store)
    assert [2] == await store.ack(
        [(job.id, job.token, "f", "ValueError: x", 200)], result_ttl_ms=TTL
    )
    assert "scheduled" == await state(store, "a")
    assert (0, 1, 0, 0) == await store.counts()
    claimed: list[Claimed] = []

    async def claimed_again() -> bool:
        claimed.extend(await claim(store))
        return bool(claimed)

    await eventually(claimed_again)
    assert [("a", 2, 2)] == [(job.id, job.token, job.tries) for job in claimed]


@ALL_BACKENDS
async def test_a_failure_without_delay_is_ready_at_once(store: QueueStore) -> None:
    """A zero retry delay puts the job straight back on its ready list."""
    await enqueue(store, [new("a")])
    (job,) = await claim(store)
    assert [2] == await store.ack([(job.id, job.token, "f", "E", 0)], result_ttl_ms=TTL)
    assert ["a"] == [job.id for job in await claim(store)]


@ALL_BACKENDS
async def test_the_last_failure_dead_letters_and_requeue_redrives(store: QueueStore) -> None:
    """Past its retries a job is dead, with its error; requeue gives it fresh retries."""
    await enqueue(store, [new("a", retries=0), new("b", retries=5)])
    a, b = await claim(store)
    codes = await store.ack(
        [(a.id, a.token, "f", "ValueError: boom", 0), (b.id, b.token, "f", "E", -1)],
        result_ttl_ms=TTL,
    )
    assert [3, 3] == codes
    stored = await store.job("a")
    assert stored is not None
    assert ("dead", "ValueError: boom") == (stored.state, stored.error)
    assert ["b", "a"] == await store.dead_ids(10)  # one time of death: by id, highest first
    assert 1 == await store.requeue(["a", "unknown"])
    assert 0 == await store.requeue([])
    (again,) = await claim(store)
    assert ("a", 1) == (again.id, again.tries)
    assert (0, 0, 1, 1) == await store.counts()


@ALL_BACKENDS
async def test_an_expired_lease_is_reaped_to_the_front_of_the_queue(store: QueueStore) -> None:
    """Any claim re-queues a job whose lease expired, ahead of jobs still waiting."""
    await enqueue(store, [new("a")])
    await claim(store, lease_ms=50)
    await enqueue(store, [new("b")])

    async def reaped() -> bool:
        await claim(store, 0)  # reaps, claims nothing
        return "queued" == await state(store, "a")

    await eventually(reaped)
    assert [("a", 2)] == [(job.id, job.token) for job in await claim(store, 1)]


@ALL_BACKENDS
async def test_an_expired_lease_past_the_retries_dead_letters(store: QueueStore) -> None:
    """A job whose worker died on its last attempt goes to the dead-letter set."""
    await enqueue(store, [new("a", retries=0)])
    await claim(store, lease_ms=50)

    async def dead() -> bool:
        await claim(store)
        return "dead" == await state(store, "a")

    await eventually(dead)
    stored = await store.job("a")
    assert stored is not None
    assert (stored.error or "").startswith("LeaseExpired")


@ALL_BACKENDS
async def test_extending_keeps_the_lease_and_reports_lost_ones(store: QueueStore) -> None:
    """A renewed lease is not reaped; leases under stale tokens are reported lost."""
    await enqueue(store, [new("a"), new("b")])
    a, b = await claim(store, lease_ms=100)
    lost, cancel = await store.extend([(a.id, a.token), (b.id, b.token + 1)], lease_ms=60_000)
    assert (["b"], []) == (lost, cancel)

    async def b_reaped() -> bool:
        return [b.id] == [job.id for job in await claim(store)]

    await eventually(b_reaped)
    assert "active" == await state(store, "a")


@ALL_BACKENDS
async def test_a_release_hands_the_attempt_back(store: QueueStore) -> None:
    """A released job goes back to the front, its attempt not counted."""
    await enqueue(store, [new("a"), new("b")])
    (a,) = await claim(store, 1)
    assert [1] == await store.ack([(a.id, a.token, "r", "", 0)], result_ttl_ms=TTL)
    (again,) = await claim(store, 1)
    assert ("a", 2, 1) == (again.id, again.token, again.tries)


@ALL_BACKENDS
async def test_cancelling_a_waiting_job_takes_it_out(store: QueueStore) -> None:
    """A queued or scheduled job is cancelled at once and never claimed."""
    await enqueue(store, [new("a"), new("b", when="+60000"), new("c")])
    assert "cancelled" == await store.cancel("a", result_ttl_ms=TTL)
    assert "cancelled" == await store.cancel("b", result_ttl_ms=TTL)
    assert "cancelled" == await store.cancel("a", result_ttl_ms=TTL)
    assert None is await store.cancel("unknown", result_ttl_ms=TTL)
    assert ["c"] == [job.id for job in await claim(store)]
    assert (0, 0, 1, 0) == await store.counts()


@ALL_BACKENDS
async def test_cancelling_a_running_job_goes_through_its_heartbeat(store: QueueStore) -> None:
    """A running job is flagged; its worker's next renewal learns it and settles it."""
    await enqueue(store, [new("a")])
    (a,) = await claim(store)
    assert "active" == await store.cancel("a", result_ttl_ms=TTL)
    assert ([], ["a"]) == await store.extend([(a.id, a.token)], lease_ms=60_000)
    assert [1] == await store.ack([(a.id, a.token, "x", "stopped", 0)], result_ttl_ms=TTL)
    assert "cancelled" == await state(store, "a")


@ALL_BACKENDS
async def test_a_cancelled_job_whose_worker_died_ends_cancelled(store: QueueStore) -> None:
    """The reaper settles a flagged job as cancelled instead of re-queueing it."""
    await enqueue(store, [new("a")])
    await claim(store, lease_ms=50)
    await store.cancel("a", result_ttl_ms=TTL)

    async def cancelled() -> bool:
        await claim(store)
        return "cancelled" == await state(store, "a")

    await eventually(cancelled)


@ALL_BACKENDS
async def test_a_unique_key_holds_one_live_job(store: QueueStore) -> None:
    """While a job holds its key, enqueueing again returns it; once it ends, the key is free."""
    first = await enqueue(store, [new("a", key="k"), new("b", key="k")])
    assert [("a", True, None), ("a", False, None)] == first
    (a,) = await claim(store)
    await store.ack([(a.id, a.token, "c", b"1", 0)], result_ttl_ms=TTL)
    assert [("c", True, None)] == await enqueue(store, [new("c", key="k")])


@ALL_BACKENDS
async def test_a_named_job_is_created_once_while_it_is_kept(store: QueueStore) -> None:
    """A job id the caller chose makes one job: live, or ended and kept, it is returned."""
    assert [("a", True, None), ("a", False, None)] == await enqueue(
        store, [new("a", named=True), new("a", named=True, when="+5000")]
    )
    (a,) = await claim(store)
    await store.ack([(a.id, a.token, "c", b"1", 0)], result_ttl_ms=TTL)
    assert [("a", False, None)] == await enqueue(store, [new("a", named=True)])
    stored = await store.job("a")
    assert stored is not None
    assert ("completed", b"1") == (stored.state, stored.result)
    assert (0, 0, 0, 0) == await store.counts()


@ALL_BACKENDS
async def test_a_named_job_of_another_task_is_reported_in_the_same_call(
    store: QueueStore,
) -> None:
    """An id held by a job of another task comes back with that task; nothing is created."""
    other = Batch("other", 0, 0, "", "", named=True)
    assert [("a", True, None)] == await enqueue(store, [new("a", named=True)])
    assert [("a", False, "t")] == await store.enqueue(other, [("a", b"[[],{}]", "")])
    stored = await store.job("a")
    assert stored is not None
    assert ("t", (1, 0, 0, 0)) == (stored.task, await store.counts())


@ALL_BACKENDS
async def test_scheduled_jobs_report_when_they_are_due(store: QueueStore) -> None:
    """A claim that finds nothing says how long until the next scheduled job."""
    await enqueue(store, [new("a", when="+5000")])
    nearest, jobs = await store.claim(
        1, lease_ms=1000, cap=0, result_ttl_ms=TTL, dead_ttl_ms=0, worker="w"
    )
    assert [] == jobs
    assert 0 < nearest <= 5000
    await enqueue(store, [new("b", when="1")])  # an absolute time in the past: ready now
    assert ["b"] == [job.id for job in await claim(store)]


@ALL_BACKENDS
async def test_a_cron_fire_enqueues_once(store: QueueStore) -> None:
    """The first call for a due fire time enqueues; later ones, and early ones, do not."""
    batch, (job_id, args, _) = new("cron-1")
    assert 0 < await store.fire_cron("nightly", 2**50, job_id, batch, args)
    assert 0 == await store.fire_cron("nightly", 1000, job_id, batch, args)
    assert -1 == await store.fire_cron("nightly", 1000, job_id, batch, args)
    assert -1 == await store.fire_cron("nightly", 999, job_id, batch, args)
    assert ["cron-1"] == [job.id for job in await claim(store)]


async def test_settled_jobs_are_announced(queue: Queue) -> None:
    """The ids of settled jobs are published on the queue's channel, space-separated."""
    store = redis_store(queue)
    messages: list[bytes] = []
    async with Subscription(
        queue.client, store.channel, messages.append, sharded=queue.client.is_cluster
    ) as subscription:
        await subscription.start()
        await enqueue(store, [new("a"), new("b")])
        a, b = await claim(store)
        await store.ack(
            [(a.id, a.token, "c", b"1", 0), (b.id, b.token, "x", "", 0)], result_ttl_ms=TTL
        )

        async def heard() -> bool:
            return bool(messages)

        await eventually(heard)
    assert [b"a b"] == messages


@ALL_BACKENDS
async def test_a_re_driven_job_leaves_the_key_of_its_successor_alone(store: QueueStore) -> None:
    """A dead job gave up its unique key; dying again it must not free the key's new holder."""
    await enqueue(store, [new("a", retries=0, key="k")])
    (a,) = await claim(store)
    await store.ack([(a.id, a.token, "f", "E", 0)], result_ttl_ms=TTL)
    assert 1 == await store.requeue(["a"])
    assert [("b", True, None)] == await enqueue(store, [new("b", key="k")])
    again, _ = await claim(store, 2)
    assert "a" == again.id
    await store.ack([(again.id, again.token, "f", "E", 0)], result_ttl_ms=TTL)
    assert [("b", False, None)] == await enqueue(store, [new("c", key="k")])


@ALL_BACKENDS
async def test_a_claim_deletes_dead_jobs_past_the_retention(store: QueueStore) -> None:
    """Dead jobs older than the claim's retention go (hash and entry); a retention of 0 keeps them.

    Their unique key went at death: its new holder keeps it.
    """
    await enqueue(store, [new("a", retries=0, key="k")])
    await kill(store, "a")
    assert [("b", True, None)] == await enqueue(store, [new("b", key="k", when="+60000")])
    await claim(store, 0, dead_ttl_ms=0)
    await claim(store, 0, dead_ttl_ms=TTL)  # not a minute old yet
    assert "dead" == await state(store, "a")

    async def deleted() -> bool:
        await claim(store, 0, dead_ttl_ms=1)  # a ms after the death, on the store's clock
        return None is await state(store, "a")

    await eventually(deleted)
    assert ([], (0, 1, 0, 0)) == (await store.dead_ids(10), await store.counts())
    assert 0 == await store.requeue(["a"])
    assert [("b", False, None)] == await enqueue(store, [new("c", key="k")])


@ALL_BACKENDS
async def test_purge_deletes_the_given_dead_jobs_only(store: QueueStore) -> None:
    """Given ids, only those that are dead are deleted, whatever their age and the limit."""
    await enqueue(store, [new("a", retries=0), new("b", retries=0), new("c")])
    await kill(store, "a", "b")
    assert 1 == await store.purge_dead(["a", "c", "unknown"], older_than_ms=None, limit=1)
    assert 0 == await store.purge_dead([], older_than_ms=None, limit=1)
    assert (None, "dead", "queued") == (
        await state(store, "a"),
        await state(store, "b"),
        await state(store, "c"),
    )
    assert (1, 0, 0, 1) == await store.counts()


@ALL_BACKENDS
async def test_purge_by_age_takes_the_oldest_first_up_to_the_limit(store: QueueStore) -> None:
    """Without ids the oldest dead jobs go (deaths in one ms by id), only those old enough."""
    await enqueue(store, [new(job_id, retries=0) for job_id in "cab"])
    await kill(store, "c", "a", "b")
    assert 0 == await store.purge_dead(None, older_than_ms=TTL, limit=10)
    assert 2 == await store.purge_dead(None, older_than_ms=None, limit=2)
    assert ["c"] == await store.dead_ids(10)

    async def purged() -> bool:
        return 1 == await store.purge_dead(None, older_than_ms=1, limit=10)

    await eventually(purged)
    assert (0, 0, 0, 0) == await store.counts()
    assert [None, None, None] == [await state(store, job_id) for job_id in "abc"]
