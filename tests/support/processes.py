"""Running one entry point in several real processes that start together."""

from __future__ import annotations

import multiprocessing
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.queues import Queue

SPAWN = multiprocessing.get_context("spawn")


def run_processes(
    target: Callable[..., None],
    count: int,
    make_args: Callable[[int, Any, Queue[Any]], tuple[Any, ...]],
) -> list[Any]:
    """Run `target(*make_args(index, barrier, results))` in `count` spawned processes.

    Each process waits at `barrier` (a `multiprocessing.Barrier` of `count`) once
    ready, so all start together, and puts one result on `results`; returns them.
    Every process must exit with status 0.
    """
    barrier = SPAWN.Barrier(count)
    results: Queue[Any] = SPAWN.Queue()
    started = [
        SPAWN.Process(target=target, args=make_args(i, barrier, results)) for i in range(count)
    ]
    for process in started:
        process.start()
    try:
        returned = [results.get(timeout=90) for _ in started]
    finally:
        for process in started:
            process.join(timeout=30)
    assert [0] * count == [process.exitcode for process in started]
    return returned
