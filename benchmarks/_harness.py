"""What every benchmark shares: run concurrent callers for a while and count."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

Operation = Callable[[], Awaitable[object]]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


def redis_options(doc: str, *, seconds: float) -> argparse.ArgumentParser:
    """The options of a benchmark against one Redis: `--url`, `--seconds`, `--rounds`.

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
    return parser


async def throughput(operation: Operation, tasks: int, seconds: float) -> float:
    """Return operations per second of `tasks` coroutines calling `operation` back to back."""
    deadline = time.perf_counter() + seconds
    counts = [0] * tasks

    async def worker(index: int) -> None:
        count = 0
        while time.perf_counter() < deadline:
            await operation()
            count += 1
        counts[index] = count

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(tasks)))
    return sum(counts) / (time.perf_counter() - started)


async def median_throughputs(
    contenders: dict[str, Operation], tasks: int, seconds: float, rounds: int
) -> dict[str, float]:
    """Median throughput of each contender over `rounds`, contenders alternating each round."""
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, operation in contenders.items():
            results[name].append(await throughput(operation, tasks, seconds))
    return {name: statistics.median(values) for name, values in results.items()}


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


def asgi_loop(app: ASGIApp, path: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> TimedLoop:
    """A loop sending `GET path` through `app` as an ASGI server would; checks once for 200.

    Each call gets a fresh copy of a prepared scope, a `receive` returning the empty
    body and a `send` that drops the messages.
    """
    scope: Message = {
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
    statuses: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def record(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

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
