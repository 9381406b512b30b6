"""Shared breaker state through Redis: the sync script, in-process replicas, 4 processes."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from scalepy.backends.keys import KeySpace
from scalepy.breaker import (
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    RedisSharedState,
    SharedStateStatistics,
)

# The sync script's call and reply: the script is run directly, transition by transition.
from scalepy.breaker._shared import SyncReply, run_sync
from scalepy.errors import BackendError, ConfigurationError
from scalepy.testing import FakeClock
from tests.breaker import shared_processes

if TYPE_CHECKING:
    from collections.abc import Iterator
    from multiprocessing.queues import Queue

    from redis.asyncio.client import PubSub
    from redis.asyncio.cluster import ClusterPubSub
    from redis.typing import EncodableT

    from scalepy.backends.redis import RedisClient
    from scalepy.breaker import StateChange
    from tests.support.redis_server import RedisServer

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN
SPAWN = multiprocessing.get_context("spawn")
FLUSH = 0.5
MARGIN = 0.25  # process scheduling; pub/sub usually delivers in about a millisecond
CHANNEL = "scalepy-test:breaker-events"


# -- the sync script, run directly ---------------------------------------------


def script_args(
    replica: str,
    known: int,
    calls: int = 0,
    failures: int = 0,
    *,
    proposal: str = "",
    wait_ms: int = 30_000,
    now_ms: int | str = "",
) -> list[EncodableT]:
    """ARGV for a breaker with minimum_calls 20, failure rate 0.5, windows stale after 3 s."""
    return [
        replica, known, calls, failures, 0, 20, "0.5", "1.0", wait_ms,
        proposal, wait_ms, 3000, 60_000, CHANNEL, now_ms,
    ]  # fmt: skip


@pytest.fixture
def keys(key_prefix: str) -> tuple[str, str]:
    """The shared record and windows of breaker `db`, sharing one hash tag."""
    state, windows = KeySpace(key_prefix).keys("db", "state", "windows")
    return state, windows


async def test_windows_of_two_replicas_add_up(redis: RedisClient, keys: tuple[str, str]) -> None:
    """10 calls with 4 failures plus 10 with 6: 20 calls at a 0.5 failure rate open the record."""
    first = await run_sync(redis, keys, script_args("a", -1, 10, 4))
    assert SyncReply(CLOSED, 0, 0.0, 0.0, 10, 4, 0) == first
    second = await run_sync(redis, keys, script_args("b", 0, 10, 6))
    assert SyncReply(OPEN, 1, 0.0, 30.0, 20, 10, 0) == second


async def test_a_replica_syncing_again_replaces_its_window(
    redis: RedisClient, keys: tuple[str, str]
) -> None:
    """A window is a snapshot: syncing it twice (a retry) does not count it twice."""
    await run_sync(redis, keys, script_args("a", -1, 10, 4))
    again = await run_sync(redis, keys, script_args("a", 0, 10, 4))
    assert (CLOSED, 0, 10, 4) == (again.state, again.epoch, again.calls, again.failures)


async def test_a_stale_epoch_is_refused(redis: RedisClient, keys: tuple[str, str]) -> None:
    """A trial result applies only at the epoch it was made in; a refused one returns the record."""
    assert OPEN == (await run_sync(redis, keys, script_args("a", -1, 20, 20))).state
    refused = await run_sync(redis, keys, script_args("b", 0, proposal="0"))
    assert (OPEN, 1) == (refused.state, refused.epoch)
    closed = await run_sync(redis, keys, script_args("b", 1, proposal="0"))
    assert (CLOSED, 2) == (closed.state, closed.epoch)
    late = await run_sync(redis, keys, script_args("a", 1, proposal="1"))
    assert (CLOSED, 2) == (late.state, late.epoch)


async def test_a_failed_trial_reopens_with_its_wait(
    redis: RedisClient, keys: tuple[str, str]
) -> None:
    """Reopening at the current epoch starts a new OPEN with the proposed (grown) wait."""
    await run_sync(redis, keys, script_args("a", -1, 20, 20))
    reopened = await run_sync(redis, keys, script_args("a", 1, proposal="1", wait_ms=60_000))
    assert (OPEN, 2, 60.0) == (reopened.state, reopened.epoch, reopened.open_wait)


async def test_a_proposal_while_closed_is_ignored(
    redis: RedisClient, keys: tuple[str, str]
) -> None:
    """A local-only trial result does not move a CLOSED record; the window still counts."""
    reply = await run_sync(redis, keys, script_args("a", 0, 5, 5, proposal="1"))
    assert SyncReply(CLOSED, 0, 0.0, 0.0, 5, 5, 0) == reply


async def test_stored_windows_expire(redis: RedisClient, keys: tuple[str, str]) -> None:
    """A replica that stops syncing stops counting after stale_after (3 s here), on Redis time."""
    start = 1_000_000_000
    await run_sync(redis, keys, script_args("a", -1, 10, 10, now_ms=start))
    fresh = await run_sync(redis, keys, script_args("b", 0, now_ms=start + 3000))
    assert 10 == fresh.calls
    stale = await run_sync(redis, keys, script_args("b", 0, now_ms=start + 3001))
    assert 0 == stale.calls
    assert 0 == await redis.execute("HEXISTS", keys[1], "a")
    assert 0 < await redis.execute("PTTL", keys[1]) <= 60_000


async def test_a_replica_behind_the_epoch_stores_nothing(
    redis: RedisClient, keys: tuple[str, str]
) -> None:
    """Windows judged at an older epoch are dropped: the replica must adopt the record first."""
    await run_sync(redis, keys, script_args("a", -1, 20, 20))
    await run_sync(redis, keys, script_args("a", 1, proposal="0"))
    behind = await run_sync(redis, keys, script_args("c", 1, 20, 20))
    assert (CLOSED, 2, 0) == (behind.state, behind.epoch, behind.calls)
    assert 0 == await redis.execute("HLEN", keys[1])


async def test_transitions_are_published(redis: RedisClient, keys: tuple[str, str]) -> None:
    """Every transition is published as epoch:state:elapsed_ms:wait_ms."""
    await redis.redis.initialize()
    pubsub: PubSub | ClusterPubSub = redis.redis.pubsub()
    await pubsub.subscribe(CHANNEL)
    try:
        assert "subscribe" == (await pubsub.get_message(timeout=None))["type"]
        await run_sync(redis, keys, script_args("a", -1, 20, 20))
        message = await pubsub.get_message(timeout=None)
    finally:
        await pubsub.aclose()
    assert b"1:1:0:30000" == message["data"]


# -- replicas in one process ---------------------------------------------------


class Replica:
    """A breaker named `db` with a shared state, recording the times it changed state."""

    def __init__(self, url: str, namespace: str, *, flush: float = FLUSH, **options: Any) -> None:
        self.changes: dict[BreakerState, asyncio.Event] = {s: asyncio.Event() for s in BreakerState}
        self.times: dict[BreakerState, float] = {}
        settings: dict[str, Any] = {
            "failure_rate_threshold": 1.0,
            "minimum_calls": 2,
            "window_size": 2,
            "open_for": 10.0,
            "permitted_calls_in_half_open": 1,
        }
        settings.update(options)
        self.shared = RedisSharedState(
            url, namespace=namespace, flush_interval=flush, max_backoff=0.3
        )
        self.breaker = CircuitBreaker(
            "db", listeners=[self._changed], shared=self.shared, **settings
        )

    def _changed(self, change: StateChange) -> None:
        self.times.setdefault(change.to_state, time.monotonic())
        self.changes[change.to_state].set()

    async def reached(self, state: BreakerState) -> float:
        """Wait (10 s at most) until the breaker has entered `state`; return when it first did."""
        await asyncio.wait_for(self.changes[state].wait(), 10.0)
        return self.times[state]

    async def call(self, ok: bool) -> None:
        """One call through the breaker, succeeding or failing."""

        @self.breaker
        async def dependency() -> None:
            if not ok:
                raise ValueError("dependency down")

        await dependency()

    async def trip(self) -> None:
        """Two failures: the local breaker opens."""
        for _ in range(2):
            with pytest.raises(ValueError, match="dependency down"):
                await self.call(ok=False)
        assert OPEN == self.breaker.state


@pytest.fixture
def namespace() -> str:
    """A namespace no other test uses."""
    return f"test-{uuid.uuid4().hex}"


@pytest.mark.parametrize("target", ["standalone", "cluster"])
async def test_failures_in_one_replica_open_the_other(
    target: str, redis_url: str, cluster_url: str, namespace: str
) -> None:
    """Replica a trips; b opens within one flush interval (over pub/sub, in milliseconds)."""
    url = redis_url if target == "standalone" else cluster_url
    a, b = Replica(url, namespace), Replica(url, namespace)
    await a.shared.sync()
    await b.shared.sync()
    await a.trip()
    lag = await b.reached(OPEN) - a.times[OPEN]
    assert lag <= FLUSH
    assert CircuitOpenError is type(await _rejection(b))
    stats = b.shared.statistics()
    assert (1, OPEN, 1) == (stats.epoch, stats.shared_state, stats.adopted)
    await a.breaker.aclose()
    await b.breaker.aclose()


async def test_a_sync_reply_overtaken_by_a_notification_is_not_adopted(
    redis_url: str, namespace: str
) -> None:
    """A reply older than a transition already notified does not rewind the epoch.

    On Redis Cluster the notification can travel on another node's connection and
    arrive before the reply of a sync sent earlier; that reply's epoch is then behind,
    which must not read as a lost record.
    """
    replica = Replica(redis_url, namespace, flush=3600)
    await replica.shared.sync()
    # The background task syncs once at start and once when its subscription connects;
    # one of those sent after the notification below would rightly adopt Redis' epoch 0
    # (the notification is made up), so the scenario waits until both are done.
    async with asyncio.timeout(10):
        # no event tells when a background sync is done: poll its counter
        while replica.shared.statistics().syncs < 3:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    assert (0, CLOSED) == (replica.shared.statistics().epoch, replica.breaker.state)
    late = asyncio.create_task(replica.shared.sync())
    await asyncio.sleep(0)  # the sync is sent with epoch 0
    replica.shared.notify(b"1:1:0:10000")  # another replica's trip overtakes its reply
    reply = await late
    stats = replica.shared.statistics()
    assert (0, 1, OPEN, OPEN) == (
        reply.epoch,
        stats.epoch,
        stats.shared_state,
        replica.breaker.state,
    )
    await replica.breaker.aclose()


async def _rejection(replica: Replica) -> BaseException:
    with pytest.raises(CircuitOpenError) as caught:
        await replica.call(ok=True)
    return caught.value


async def test_a_passed_trial_closes_every_replica(redis_url: str, namespace: str) -> None:
    """After the shared wait, a's successful trial closes b too."""
    clock = FakeClock()
    a, b = Replica(redis_url, namespace, clock=clock), Replica(redis_url, namespace, clock=clock)
    await a.shared.sync()
    await b.shared.sync()
    await a.trip()
    await b.reached(OPEN)
    clock.advance(11)
    await a.call(ok=True)
    assert CLOSED == a.breaker.state
    await b.reached(CLOSED)
    assert (CLOSED, 2) == (b.breaker.state, b.shared.statistics().epoch)
    await a.breaker.aclose()
    await b.breaker.aclose()


async def test_a_failed_trial_reopens_every_replica_for_longer(
    redis_url: str, namespace: str
) -> None:
    """A failed trial in a reopens b with a's grown wait (backoff 2: 20 s)."""
    clock = FakeClock()
    options: dict[str, Any] = {"clock": clock, "backoff": 2.0, "open_for_max": 40.0}
    a, b = Replica(redis_url, namespace, **options), Replica(redis_url, namespace, **options)
    await a.shared.sync()
    await b.shared.sync()
    await a.trip()
    await b.reached(OPEN)
    b.changes[OPEN].clear()
    clock.advance(11)
    assert HALF_OPEN == b.breaker.state
    with pytest.raises(ValueError, match="dependency down"):
        await a.call(ok=False)
    await b.reached(OPEN)
    assert 20.0 == pytest.approx(b.breaker.statistics().retry_after, abs=0.5)
    assert 2 == b.shared.statistics().epoch
    await a.breaker.aclose()
    await b.breaker.aclose()


class LogRecords(logging.Handler):
    """Collects the breaker logger's records."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record."""
        self.records.append(record)

    def count(self, level: int) -> int:
        """Records of exactly `level`."""
        return sum(record.levelno == level for record in self.records)


@pytest.fixture
def log_records() -> Iterator[LogRecords]:
    """The records of the `scalepy.breaker` logger during the test."""
    handler = LogRecords()
    logger = logging.getLogger("scalepy.breaker")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.setLevel(level)
    logger.removeHandler(handler)


async def test_redis_outage_leaves_local_breakers_working(
    redis_server: RedisServer, namespace: str, log_records: LogRecords
) -> None:
    """Redis down: calls still pass or are rejected locally, quickly; once back, sharing resumes."""
    url = f"{redis_server.url}?timeout=0.5"
    a, b = Replica(url, namespace), Replica(url, namespace)
    await a.shared.sync()
    await b.shared.sync()
    redis_server.stop()
    started = time.monotonic()
    await a.trip()
    await _rejection(a)
    await b.call(ok=True)
    assert time.monotonic() - started < 0.5
    for replica in (a, b):
        for _ in range(3):
            with pytest.raises(BackendError):
                await replica.shared.sync()
    assert 2 == log_records.count(logging.WARNING)  # once per replica and outage
    assert (CLOSED, False) == (b.breaker.state, b.shared.statistics().available)
    b.breaker.reset()  # forget b's success: a's failures alone are judged
    redis_server.start()
    await b.reached(OPEN)
    await a.shared.sync()
    await b.shared.sync()
    assert 2 == log_records.count(logging.INFO)  # once per replica: sharing again
    assert (True, True) == (a.shared.statistics().available, b.shared.statistics().available)
    await a.breaker.aclose()
    await b.breaker.aclose()


# -- adoption rules, without background tasks ---------------------------------


def detached(clock: FakeClock | None = None) -> tuple[CircuitBreaker, RedisSharedState]:
    """A breaker built outside any event loop: its shared state has no task running."""
    shared = RedisSharedState("redis://127.0.0.1:1/0", namespace="detached")
    breaker = CircuitBreaker(
        "db",
        failure_rate_threshold=1.0,
        minimum_calls=2,
        window_size=2,
        clock=clock or FakeClock(),
        shared=shared,
    )
    return breaker, shared


def trip_sync(breaker: CircuitBreaker) -> None:
    """Two failures of a sync function: the breaker opens (no loop runs, no task starts)."""

    @breaker
    def fail() -> None:
        raise ValueError("dependency down")

    for _ in range(2):
        with pytest.raises(ValueError, match="dependency down"):
            fail()


def test_a_notification_opens_with_the_shared_wait() -> None:
    """A published OPEN is adopted with its remaining wait; the same epoch again is ignored."""
    breaker, shared = detached()
    shared.notify(b"1:1:2000:5000")
    assert (OPEN, 3.0) == (breaker.state, breaker.statistics().retry_after)
    breaker.reset()
    shared.notify(b"1:1:0:5000")
    assert CLOSED == breaker.state
    assert "stopped shared=open epoch=1" in repr(shared)


def test_the_first_sync_never_closes_a_local_trip() -> None:
    """A replica opened locally keeps OPEN when it first sees a CLOSED record, or a lost one."""
    breaker, shared = detached()
    trip_sync(breaker)
    shared.notify(b"0:0:0:0")
    assert OPEN == breaker.state
    shared.notify(b"3:1:0:5000")
    shared.notify(b"1:0:0:0")  # epoch went back: the record was lost, not closed
    assert OPEN == breaker.state
    shared.notify(b"2:0:0:0")
    assert CLOSED == breaker.state
    assert 1 == shared.statistics().adopted


def test_explicit_states_ignore_the_shared_state() -> None:
    """FORCED_OPEN and DISABLED are left only explicitly."""
    breaker, shared = detached()
    breaker.force_open()
    shared.notify(b"1:0:0:0")
    assert BreakerState.FORCED_OPEN == breaker.state
    breaker.disable()
    shared.notify(b"2:1:0:5000")
    assert BreakerState.DISABLED == breaker.statistics().state


def test_malformed_notifications_are_ignored() -> None:
    """Garbage on the channel changes nothing."""
    breaker, shared = detached()
    for payload in (b"", b"1:1:0", b"x:1:0:0", b"1:7:0:0"):
        shared.notify(payload)
    assert (CLOSED, 0) == (breaker.state, shared.statistics().notifications)


def test_a_result_superseded_locally_is_not_proposed(redis_url: str, namespace: str) -> None:
    """A trial result is dropped if the breaker changed state before the sync."""
    clock = FakeClock()
    shared = RedisSharedState(redis_url, namespace=namespace)
    breaker = CircuitBreaker(
        "db", failure_rate_threshold=1.0, minimum_calls=2, window_size=2, open_for=10.0,
        permitted_calls_in_half_open=1, clock=clock, shared=shared,
    )  # fmt: skip
    with asyncio.Runner() as runner:  # the loop runs only inside run(): no task starts
        trip_sync(breaker)
        assert (OPEN, 1) == runner.run(shared.sync())[:2]
        clock.advance(11)
        breaker(lambda: None)()  # the trial passes: CLOSED, proposed at epoch 1
        breaker.force_open()
        assert (OPEN, 1) == runner.run(shared.sync())[:2]
        assert BreakerState.FORCED_OPEN == breaker.state
        runner.run(breaker.aclose())


# -- lifecycle -----------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"flush_interval": 0},
        {"max_backoff": float("inf")},
        {"flush_interval": 1.0, "stale_after": 1.0},
        {"namespace": "a{b}"},
    ],
)
def test_invalid_options_are_refused(options: dict[str, Any]) -> None:
    """Each invalid option raises ConfigurationError."""
    with pytest.raises(ConfigurationError):
        RedisSharedState("redis://127.0.0.1:6379/0", **options)


async def test_a_shared_state_serves_one_breaker(redis: RedisClient, namespace: str) -> None:
    """start() and sync() need a breaker; a second breaker is refused."""
    shared = RedisSharedState(redis, namespace=namespace)
    with pytest.raises(ConfigurationError):
        await shared.open()
    with pytest.raises(ConfigurationError):
        await shared.sync()
    CircuitBreaker("db", shared=shared)
    with pytest.raises(ConfigurationError):
        CircuitBreaker("other", shared=shared)
    await shared.aclose()
    assert await redis.ping()  # an injected client is not closed


async def test_attached_in_a_running_loop_it_starts_at_once(
    redis: RedisClient, namespace: str
) -> None:
    """Tasks start with the breaker; start() is idempotent; aclose() stops them."""
    shared = RedisSharedState(redis, namespace=namespace)
    breaker = CircuitBreaker("db", shared=shared)
    assert "running" in repr(shared)
    await shared.open()
    await shared.sync()
    stats = shared.statistics()
    assert SharedStateStatistics(
        name="db", epoch=0, shared_state=CLOSED, syncs=stats.syncs, failed_syncs=0,
        adopted=0, notifications=0, available=True,
    ) == stats  # fmt: skip
    assert stats.syncs >= 1  # the background task may have synced too
    await breaker.aclose()
    assert "stopped" in repr(shared)


def test_created_before_the_loop_it_starts_on_the_first_transition(
    redis_url: str, namespace: str
) -> None:
    """A breaker built at import time starts sharing on its first transition, or on start()."""
    shared = RedisSharedState(redis_url, namespace=namespace)
    breaker = CircuitBreaker("db", minimum_calls=1, window_size=1, shared=shared)
    assert "stopped" in repr(shared)

    async def trip_then_close() -> str:
        with pytest.raises(ValueError, match="boom"):
            await breaker(_fail)()
        running = repr(shared)
        await breaker.aclose()
        return running

    assert "running" in asyncio.run(trip_then_close())


async def _fail() -> None:
    raise ValueError("boom")


# -- acceptance: 4 OS processes ------------------------------------------------


def _collect(results: Queue[tuple[Any, ...]], count: int) -> list[tuple[Any, ...]]:
    return [results.get(timeout=60) for _ in range(count)]


def test_four_processes_open_within_one_flush_interval(redis_url: str, namespace: str) -> None:
    """Failures in process 0 only: all four are OPEN within one flush interval of its opening."""
    barrier = SPAWN.Barrier(4)
    results: Queue[tuple[Any, ...]] = SPAWN.Queue()
    processes = [
        SPAWN.Process(
            target=shared_processes.open_together,
            args=(i, redis_url, namespace, FLUSH, barrier, results),
        )
        for i in range(4)
    ]
    for process in processes:
        process.start()
    try:
        opened = dict(_collect(results, 4))
    finally:
        for process in processes:
            process.join(timeout=30)
    assert [0] * 4 == [process.exitcode for process in processes]
    tripped = opened[0]
    assert isinstance(tripped, float)
    late = {i: at - tripped for i, at in opened.items() if at - tripped > FLUSH + MARGIN}
    assert {} == late


def test_four_processes_survive_a_redis_outage(redis_server: RedisServer, namespace: str) -> None:
    """Redis stopped: each process decides locally, fast; restarted: process 0's trip is shared."""
    url = f"{redis_server.url}?timeout=0.5"
    barrier = SPAWN.Barrier(5)
    stopped, restarted = SPAWN.Event(), SPAWN.Event()
    results: Queue[tuple[Any, ...]] = SPAWN.Queue()
    processes = [
        SPAWN.Process(
            target=shared_processes.survive_outage,
            args=(i, url, namespace, FLUSH, barrier, stopped, restarted, results),
        )
        for i in range(4)
    ]
    for process in processes:
        process.start()
    try:
        barrier.wait(60)
        redis_server.stop()
        stopped.set()
        outage = {report[1]: report[2:] for report in _collect(results, 4)}
        redis_server.start()
        back = time.monotonic()
        restarted.set()
        resumed = {report[1]: report[2:] for report in _collect(results, 4)}
        barrier.wait(60)
    finally:
        for process in processes:
            process.join(timeout=30)
    assert [0] * 4 == [process.exitcode for process in processes]
    # During the outage: process 0 opened and rejected locally, the others kept succeeding.
    assert ("open", True) == (outage[0][0], outage[0][2] > 0)
    assert [("closed", 0)] * 3 == [(outage[i][0], outage[i][2]) for i in (1, 2, 3)]
    assert all(report[1] > 0 for report in outage.values())  # calls ran
    assert [] == [i for i, report in outage.items() if report[3] >= 0.5]  # none slower than timeout
    assert [] == [i for i, report in outage.items() if report[4] < 1]  # syncs failed quietly
    # After the restart: the others adopted process 0's OPEN, within backoff + flush + margin.
    assert [("open", 1)] * 3 == [resumed[i][:2] for i in (1, 2, 3)]
    bound = 0.5 + FLUSH + 2 * MARGIN
    assert [] == [i for i in (1, 2, 3) if resumed[i][2] - back > bound]
