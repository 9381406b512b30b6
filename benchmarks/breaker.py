"""Circuit breaker overhead per call: scalepy against aiobreaker, purgatory and pybreaker.

Run (peers from the `bench` extra; Redis only for the optional purgatory Redis row):

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/breaker.py [--calls 200000] [--rounds 7]
        [--redis-url redis://127.0.0.1:6379/0] [--redis-calls 2000] [--no-redis]

Every contender wraps a trivial function (`async def noop(): return None`, or its
sync twin for the sync rows) and is called `calls` times back to back in one
coroutine, timed with `time.perf_counter_ns` around the whole loop; no call
suspends, so the event loop never runs in between. The garbage collector stays
on (collected before each loop), so a contender that leaves reference cycles
behind pays for their collection. Rounds alternate between contenders and the
median is shown. "added" is the contender's time per call minus the bare call of the same kind
(async or sync) measured in the same run.

Rejections: a breaker really OPEN (scalepy tripped by a failure; aiobreaker and
pybreaker `open()`, which moves them to their OPEN state) raises its error, caught
in the loop; the baseline is a bare function raising and the loop catching a
`CircuitOpenError`. "added / scalepy" compares each with scalepy's really-OPEN row
of the same kind; scalepy's `force_open()` rows are shown beside them. A rejection
loop in which a call went through stops the run, so every figure shown is of
rejections only; a first, shorter round of every loop is discarded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import platform
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from importlib.metadata import version

import aiobreaker
import pybreaker
from purgatory import AsyncCircuitBreakerFactory, AsyncRedisUnitOfWork
from redis.asyncio import Redis

from _harness import (
    TimedLoop,
    call_loop,
    figure_row,
    json_option,
    median_ns_per_call,
    write_result,
)
from _results import Metadata, Result, Row
from scalepy.breaker import CircuitBreaker, CircuitOpenError, RedisSharedState

TARGET_CALL_NS = 500  # the target: scalepy adds at most 0.5 us per call
TARGET_REJECTION_NS = 2_000  # and a rejection costs at most 2 us
OPEN_FOR = 3600  # seconds every open breaker stays open: longer than any run

AsyncFn = Callable[[], Awaitable[object]]
SyncFn = Callable[[], object]
Errors = type[BaseException] | tuple[type[BaseException], ...]


async def noop() -> None:
    return None


def noop_sync() -> None:
    return None


async def refuse() -> None:
    raise CircuitOpenError("bare", 0.0)


def refuse_sync() -> None:
    raise CircuitOpenError("bare", 0.0)


def fail_sync() -> None:
    raise RuntimeError("down")


def sync_calls(func: SyncFn) -> TimedLoop:
    async def loop(calls: int) -> float:
        gc.collect()
        started = time.perf_counter_ns()
        for _ in range(calls):
            func()
        return (time.perf_counter_ns() - started) / calls

    return loop


def async_rejections(func: AsyncFn, errors: Errors) -> TimedLoop:
    async def loop(calls: int) -> float:
        gc.collect()
        passed = 0
        started = time.perf_counter_ns()
        for _ in range(calls):
            try:
                await func()
            except errors:
                pass
            else:
                passed += 1
        elapsed = time.perf_counter_ns() - started
        return _rejected_only(func, passed, elapsed / calls)

    return loop


def sync_rejections(func: SyncFn, errors: Errors) -> TimedLoop:
    async def loop(calls: int) -> float:
        gc.collect()
        passed = 0
        started = time.perf_counter_ns()
        for _ in range(calls):
            try:
                func()
            except errors:
                pass
            else:
                passed += 1
        elapsed = time.perf_counter_ns() - started
        return _rejected_only(func, passed, elapsed / calls)

    return loop


def _rejected_only(func: object, passed: int, ns_per_call: float) -> float:
    """`ns_per_call`, or stop the run if some calls went through the open breaker."""
    if passed:
        raise RuntimeError(f"{func!r}: {passed:,} calls went through an open breaker")
    return ns_per_call


async def must_reject(func: AsyncFn, errors: Errors) -> None:
    """Fail loudly if a contender set up to reject lets the call through."""
    try:
        await func()
    except errors:
        return
    raise RuntimeError(f"{func!r} was expected to reject the call")


def tripped_scalepy() -> CircuitBreaker:
    """A scalepy breaker really OPEN (not forced): one failure trips it for an hour."""
    breaker = CircuitBreaker("tripped", minimum_calls=1, window_size=1, open_for=OPEN_FOR)
    with contextlib.suppress(RuntimeError):
        breaker(fail_sync)()
    return breaker


def is_sync(name: str) -> bool:
    """Whether a contender's row measures a sync function (its baseline is then sync)."""
    return name.startswith("bare sync") or name.endswith(", sync")


def closed_contenders(
    shared: RedisSharedState | None,
) -> tuple[dict[str, TimedLoop], dict[str, str]]:
    """CLOSED breakers around a trivial function; returns the loops and each one's baseline."""
    count = CircuitBreaker("bench-count")
    sharing = CircuitBreaker("bench-shared", shared=shared)
    time_window = CircuitBreaker("bench-time", window="time", window_size=60)
    purgatory = AsyncCircuitBreakerFactory()
    loops: dict[str, TimedLoop] = {
        "bare async call": call_loop(noop),
        "scalepy, count window": call_loop(count(noop)),
        "scalepy, time window": call_loop(time_window(noop)),
        **({} if shared is None else {"scalepy, shared via Redis": call_loop(sharing(noop))}),
        "aiobreaker": call_loop(aiobreaker.CircuitBreaker()(noop)),
        "purgatory, in memory": call_loop(purgatory("bench")(noop)),
        "bare sync call": sync_calls(noop_sync),
        "scalepy, count window, sync": sync_calls(CircuitBreaker("bench-sync")(noop_sync)),
        "pybreaker, sync": sync_calls(pybreaker.CircuitBreaker()(noop_sync)),
    }
    baselines = {name: "bare sync call" if is_sync(name) else "bare async call" for name in loops}
    return loops, baselines


async def rejecting_contenders() -> tuple[dict[str, TimedLoop], dict[str, str]]:
    """Open breakers; returns the loops and each one's baseline."""
    forced = CircuitBreaker("bench-forced")
    forced.force_open()
    forced_sync = CircuitBreaker("bench-forced-sync")
    forced_sync.force_open()
    tripped = tripped_scalepy()
    tripped_sync = tripped_scalepy()
    # Open for an hour, as scalepy's tripped breaker: at their default 60 s a slow run's
    # rejection rounds outlast it and the peers let calls through again.
    aio = aiobreaker.CircuitBreaker(name="bench", timeout_duration=timedelta(seconds=OPEN_FOR))
    aio.open()
    pyb = pybreaker.CircuitBreaker(name="bench", reset_timeout=OPEN_FOR)
    pyb.open()

    aio_noop = aio(noop)
    for func, errors in (
        (forced(noop), CircuitOpenError),
        (tripped(noop), CircuitOpenError),
        (aio_noop, aiobreaker.CircuitBreakerError),
    ):
        await must_reject(func, errors)
    loops: dict[str, TimedLoop] = {
        "bare async raise + catch": async_rejections(refuse, CircuitOpenError),
        "scalepy, forced open": async_rejections(forced(noop), CircuitOpenError),
        "scalepy, open (tripped)": async_rejections(tripped(noop), CircuitOpenError),
        "aiobreaker, open": async_rejections(aio_noop, aiobreaker.CircuitBreakerError),
        "bare sync raise + catch": sync_rejections(refuse_sync, CircuitOpenError),
        "scalepy, open (tripped), sync": sync_rejections(tripped_sync(noop_sync), CircuitOpenError),
        "scalepy, forced open, sync": sync_rejections(forced_sync(noop_sync), CircuitOpenError),
        "pybreaker, open, sync": sync_rejections(pyb(noop_sync), pybreaker.CircuitBreakerError),
    }
    baselines = {
        name: "bare sync raise + catch" if is_sync(name) else "bare async raise + catch"
        for name in loops
    }
    return loops, baselines


def report_table(
    title: str,
    medians: dict[str, float],
    baselines: dict[str, str],
    references: dict[str, str],
) -> list[Row]:
    """Print one row per contender: ns per call, ns added over its bare baseline, ratio to scalepy.

    Returns:
        The rows as results, scenario `title`.
    """
    print(f"\n{title}")
    print(f"{'contender':<32} {'ns/call':>9} {'added ns':>9} {'added / scalepy':>16}")
    rows: list[Row] = []
    for name, value in medians.items():
        baseline = baselines[name]
        if name == baseline:
            print(f"{name:<32} {value:>9,.0f} {'-':>9} {'-':>16}")
            rows.append(figure_row(name, title, 1e9 / value, more={"ns_per_call": value}))
            continue
        added = value - medians[baseline]
        reference = references[baseline]
        scalepy_added = medians[reference] - medians[baseline]
        ratio = added / scalepy_added if scalepy_added > 0 else None
        print(f"{name:<32} {value:>9,.0f} {added:>9,.0f} {_ratio(ratio):>16}")
        rows.append(
            figure_row(
                name,
                title,
                1e9 / value,
                ratio=ratio,
                ratio_to=f"added ns / added ns of {reference}",
                more={"ns_per_call": value, "added_ns": added},
            )
        )
    return rows


def _ratio(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}x"


async def purgatory_redis(url: str, calls: int, rounds: int) -> dict[str, float] | None:
    """Median ns per call of purgatory's Redis mode, or None (with a note) without Redis."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    uow = AsyncRedisUnitOfWork(url)
    try:
        factory = AsyncCircuitBreakerFactory(uow=uow)
        await factory.initialize()
        wrapped: AsyncFn = factory(name)(noop)
        await wrapped()
        medians = await median_ns_per_call({"purgatory, Redis": call_loop(wrapped)}, calls, rounds)
    except Exception as exc:  # any failure only skips this optional row
        print(f"\npurgatory Redis mode skipped ({url}): {type(exc).__name__}: {exc}")
        return None
    finally:
        with contextlib.suppress(Exception):  # nothing to clean up when Redis is down
            cleanup = Redis.from_url(url)
            await cleanup.delete(f"cbr::{name}", f"cbr::{name}::failure_count")
            await cleanup.aclose()
            await uow.contexts.redis.aclose()  # type: ignore[attr-defined]
    return medians


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--redis-calls", type=int, default=2_000)
    parser.add_argument("--no-redis", action="store_true", help="skip purgatory's Redis mode")
    json_option(parser)
    options = parser.parse_args()

    peers = ", ".join(f"{p} {version(p)}" for p in ("aiobreaker", "purgatory", "pybreaker"))
    print(f"CPython {platform.python_version()} on {platform.machine()}; {peers}")
    print(f"medians of {options.rounds} alternating rounds of {options.calls:,} calls")

    # Shared mode syncs in the background; the calls themselves stay local.
    shared = None if options.no_redis else RedisSharedState(options.redis_url, owns_client=True)
    closed, closed_baselines = closed_contenders(shared)
    if shared is not None:
        await shared.open()
    closed_medians = await median_ns_per_call(closed, options.calls, options.rounds)
    if shared is not None:
        await shared.aclose()
    references = {
        "bare async call": "scalepy, count window",
        "bare sync call": "scalepy, count window, sync",
    }
    result = Result(
        benchmark="breaker",
        metadata=Metadata.collect(
            None, **{p: version(p) for p in ("aiobreaker", "purgatory", "pybreaker")}
        ),
        notes=[
            f"Medians of {options.rounds} alternating rounds of {options.calls:,} calls after "
            "a discarded warm-up round; one coroutine, no call suspends; unpinned.",
            "Rejections compare the peers' OPEN state with scalepy's tripped (really OPEN) "
            "breaker; scalepy's force_open() rows are shown beside it.",
        ],
    )
    result.rows += report_table(
        "CLOSED breaker around a trivial function", closed_medians, closed_baselines, references
    )

    rejecting, rejecting_baselines = await rejecting_contenders()
    rejecting_medians = await median_ns_per_call(rejecting, options.calls, options.rounds)
    references = {  # like with like: the peers' OPEN state against scalepy's
        "bare async raise + catch": "scalepy, open (tripped)",
        "bare sync raise + catch": "scalepy, open (tripped), sync",
    }
    result.rows += report_table(
        "Rejection by an open breaker", rejecting_medians, rejecting_baselines, references
    )

    if not options.no_redis:
        redis_medians = await purgatory_redis(
            options.redis_url, options.redis_calls, options.rounds
        )
        if redis_medians is not None:
            value = redis_medians["purgatory, Redis"]
            added = value - closed_medians["bare async call"]
            print(f"\npurgatory Redis mode ({options.redis_calls:,} calls per round)")
            print(f"{'purgatory, Redis':<32} {value:>9,.0f} {added:>9,.0f}")
            result.rows.append(
                figure_row(
                    "purgatory, Redis",
                    "CLOSED breaker, state in Redis",
                    1e9 / value,
                    more={"ns_per_call": value, "added_ns": added},
                )
            )

    added_call = closed_medians["scalepy, count window"] - closed_medians["bare async call"]
    added_time = closed_medians["scalepy, time window"] - closed_medians["bare async call"]
    added_shared = (
        closed_medians["scalepy, shared via Redis"] - closed_medians["bare async call"]
        if shared is not None
        else 0.0
    )
    rejection = rejecting_medians["scalepy, open (tripped)"]
    worst_call = max(added_call, added_time, added_shared)
    print(
        f"\ntarget: scalepy adds <= {TARGET_CALL_NS} ns per async call: "
        f"{worst_call:,.0f} ns -> {'met' if worst_call <= TARGET_CALL_NS else 'NOT met'}"
    )
    print(
        f"target: a rejection costs <= {TARGET_REJECTION_NS:,} ns: "
        f"{rejection:,.0f} ns in all -> "
        f"{'met' if rejection <= TARGET_REJECTION_NS else 'NOT met'}"
    )
    write_result(result, options.json)


if __name__ == "__main__":
    asyncio.run(main())
