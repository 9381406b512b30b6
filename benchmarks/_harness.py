"""What every benchmark shares: run concurrent callers for a while and count."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from _results import Row

if TYPE_CHECKING:
    from _results import Result

Operation = Callable[[], Awaitable[object]]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


def redis_options(doc: str, *, seconds: float) -> argparse.ArgumentParser:
    """The options of a benchmark against one Redis: `--url`, `--seconds`, `--rounds`, `--json`.

    Args:
        doc: The benchmark's module docstring; its first line describes it.
        seconds: The default length of one measurement.

    Returns:
        A parser the benchmark may add its own options to.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--seconds", type=float, default=seconds)
    parser.add_argument("--rounds", type=int, default=3)
    json_option(parser)
    return parser


class Sample(NamedTuple):
    """One measurement: operations per second, and the calls that raised."""

    per_second: float
    errors: int


class Figure(NamedTuple):
    """A contender's median over the rounds, and what went wrong in all of them.

    `errors` counts calls that raised, warnings or errors logged by any library
    while the contender ran (aiocache and cashews log a failed Redis call and let
    the loader answer) and the contender's own fallback counter: a row with
    errors does not measure what it says.
    """

    median: float
    errors: int


class _LogCounter(logging.Handler):
    """Counts the WARNING-or-worse records any logger emits while installed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


YIELD_EVERY = 64
"""Calls after which a caller yields to the event loop once, whatever it measures."""


async def throughput(operation: Operation, tasks: int, seconds: float) -> Sample:
    """Operations per second of `tasks` coroutines calling `operation` back to back.

    A call that raises is counted as an error, not as an operation, and the
    caller goes on. Every `YIELD_EVERY` calls each caller yields to the event loop
    once, as a server's request loop does: a call that completes without
    suspending (an in-process hit) would otherwise hold the loop for the whole
    measurement and starve the contender's own background work (heartbeats,
    replies in flight), which no service does.
    """
    deadline = time.perf_counter() + seconds
    counts = [0] * tasks
    errors = [0] * tasks

    async def worker(index: int) -> None:
        count = failed = 0
        while time.perf_counter() < deadline:
            try:
                await operation()
            except Exception:  # counted: a row with errors is marked, never silently kept
                failed += 1
            else:
                count += 1
            if not (count + failed) % YIELD_EVERY:
                await asyncio.sleep(0)
        counts[index], errors[index] = count, failed

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(tasks)))
    return Sample(sum(counts) / (time.perf_counter() - started), sum(errors))


def settle_heap() -> None:
    """Collect garbage, then exempt every object alive now from later collections.

    A full collection scans every object alive, so in one process holding every
    contender (peers' memory caches keep hundreds of thousands of objects by the
    miss rounds) it paused the event loop for 0.1-0.5 s, billed to whichever
    contender was running; a pause between a Redis command's submission and its
    write outlasted the command's timeout and made it fail. Frozen objects are
    never scanned again, so collections during a round cost what the round allocated.
    """
    gc.collect()
    gc.freeze()


async def median_throughputs(
    contenders: dict[str, Operation],
    tasks: int,
    seconds: float,
    rounds: int,
    fallbacks: Mapping[str, Callable[[], int]] | None = None,
) -> dict[str, Figure]:
    """Median throughput of each contender over `rounds`, and its errors.

    A first, shorter round warms every contender up and is discarded. Rounds
    alternate between contenders, starting each round one contender later, so
    no contender always runs first or right after the same one. Before each
    round the heap is collected and frozen (`settle_heap`), so a round pays for
    the garbage collection of what it allocates, not of what ran before it.

    Args:
        contenders: The operations, by name.
        tasks: Concurrent callers.
        seconds: Length of one measurement.
        rounds: Measured rounds.
        fallbacks: Per contender, a counter of calls it answered without its
            backend (e.g. scalepy's `statistics().errors`); its growth counts as errors.
    """
    names = list(contenders)
    for name in names:
        settle_heap()
        await throughput(contenders[name], tasks, max(seconds / 5, 0.05))
    results: dict[str, list[float]] = {name: [] for name in names}
    errors = dict.fromkeys(names, 0)
    counter = _LogCounter()
    root = logging.getLogger()
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            fallback = (fallbacks or {}).get(name)
            before = fallback() if fallback is not None else 0
            counter.count = 0
            settle_heap()
            root.addHandler(counter)
            try:
                sample = await throughput(contenders[name], tasks, seconds)
            finally:
                root.removeHandler(counter)
            after = fallback() if fallback is not None else 0
            results[name].append(sample.per_second)
            errors[name] += sample.errors + counter.count + after - before
    return {name: Figure(statistics.median(results[name]), errors[name]) for name in names}


TimedLoop = Callable[[int], Awaitable[float]]
"""Runs `calls` operations back to back in one coroutine and returns nanoseconds per call."""


async def median_ns_per_call(
    loops: dict[str, TimedLoop], calls: int, rounds: int
) -> dict[str, float]:
    """Median nanoseconds per call of each loop over `rounds`, loops alternating each round.

    A first, shorter round warms every loop up and is discarded.
    """
    for loop in loops.values():
        await loop(max(1, calls // 10))
    results: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(rounds):
        for name, loop in loops.items():
            results[name].append(await loop(calls))
    return {name: statistics.median(values) for name, values in results.items()}


def call_loop(func: Callable[[], Awaitable[object]]) -> TimedLoop:
    """A loop awaiting `func()` back to back, after a garbage collection."""

    async def run(calls: int) -> float:
        gc.collect()
        started = time.perf_counter_ns()
        for _ in range(calls):
            await func()
        return (time.perf_counter_ns() - started) / calls

    return run


def asgi_loop(app: ASGIApp, path: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> TimedLoop:
    """A loop sending `GET path` through `app` as an ASGI server would; checks once for 200.

    Each call gets a fresh copy of a prepared scope, a `receive` returning the empty
    body and a `send` that drops the messages.
    """
    scope = http_scope(path, headers)
    statuses: list[int] = []
    receive = empty_body
    record = status_recorder(statuses)

    async def drop(message: Message) -> None:
        return None

    async def run(calls: int) -> float:
        if not statuses:
            await app(dict(scope), receive, record)
            assert statuses == [200], f"{path}: {statuses}"
        started = time.perf_counter_ns()
        for _ in range(calls):
            await app(dict(scope), receive, drop)
        return (time.perf_counter_ns() - started) / calls

    return run


def http_scope(path: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> Message:
    """The scope of `GET path` from 10.0.0.1, as a server builds it; copy it per request."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"pod"), *headers],
        "client": ("10.0.0.1", 50000),
        "server": ("10.0.0.2", 8000),
    }


async def empty_body() -> Message:
    """An ASGI `receive` for a request without a body."""
    return {"type": "http.request", "body": b"", "more_body": False}


def status_recorder(statuses: list[int]) -> Callable[[Message], Awaitable[None]]:
    """An ASGI `send` appending each response's status to `statuses`."""

    async def record(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    return record


async def forget_keys(url: str, match: str) -> None:
    """Delete the keys matching `match` (a benchmark's run id) from the Redis at `url`."""
    from redis.asyncio import Redis  # the bench extra: only benchmarks using Redis need it

    cleanup = Redis.from_url(url)
    try:
        async for key in cleanup.scan_iter(match=match, count=1000):
            await cleanup.unlink(key)
    finally:
        await cleanup.aclose()


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 1) -> None:
    """Print `rows` under `headers`, the first `left` columns aligned left, the others right."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    for cells in (headers, *rows):
        print(
            " ".join(
                cell.ljust(width) if index < left else cell.rjust(width)
                for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()
        )


def marked(figure: Figure, text: str) -> str:
    """`text` (a formatted figure) followed by `!` when the figure's row had errors."""
    return f"{text}!" if figure.errors else f"{text} "


def json_option(parser: argparse.ArgumentParser) -> None:
    """Add `--json PATH`: write the run's results there too (`_results.py`'s format)."""
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the results here as JSON"
    )


def with_tasks(scenario: str, tasks: int) -> str:
    """`scenario` with its number of concurrent tasks, as the tables name it."""
    return f"{scenario}, {tasks} task{'s' * (tasks != 1)}"


def figure_row(
    contender: str,
    scenario: str,
    per_second: float,
    *,
    errors: int = 0,
    ratio: float | None = None,
    ratio_to: str = "",
    more: Mapping[str, Any] | None = None,
) -> Row:
    """A result row: `per_second` operations, and the ratio the tables show beside it.

    Args:
        contender: Who was measured.
        scenario: What it did, with its conditions (e.g. `miss, 50 tasks`).
        per_second: Operations (calls, decisions, jobs) per second.
        errors: Errors and fallbacks counted over the measured rounds.
        ratio: The figure against the reference the table names in `ratio_to`.
        ratio_to: What `ratio` compares with, e.g. `vs best peer (aiocache Redis)`.
        more: Further columns by name (e.g. `ns_per_call`, `vs raw GET`), kept in
            the row's `extra`.
    """
    return Row(
        contender=contender,
        scenario=scenario,
        requests_per_second=per_second,
        errors=errors,
        extra={"ratio": ratio, "ratio_to": ratio_to, **(more or {})},
    )


def write_result(result: Result, path: Path | None) -> None:
    """Write `result` to `path` when given (`--json`), with the load average; say where."""
    if path is not None:
        result.metadata.extra["load average"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
        result.write(path)
        print(f"results written to {path}")


async def server_versions(url: str) -> dict[str, str]:
    """The Redis server's and redis-py's versions, for a result's metadata."""
    from importlib.metadata import version

    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        info = await client.info("server")
    finally:
        await client.aclose()
    return {"redis server": str(info["redis_version"]), "redis-py": version("redis")}
