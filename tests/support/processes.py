"""Running one entry point in several real processes that start together."""

from __future__ import annotations

import multiprocessing
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")

SPAWN = multiprocessing.get_context("spawn")


def results_of_processes(target: Callable[..., None], args: tuple[Any, ...], count: int) -> list[T]:
    """Run `target(*args, barrier, results)` in `count` spawned processes; return what each put.

    Each process waits at `barrier` (a `multiprocessing.Barrier` of `count`) once
    ready, so all start together, and puts one result on `results`. Every process
    must exit with status 0.
    """
    barrier = SPAWN.Barrier(count)
    results: multiprocessing.Queue[T] = SPAWN.Queue()
    processes = [SPAWN.Process(target=target, args=(*args, barrier, results)) for _ in range(count)]
    for process in processes:
        process.start()
    try:
        returned = [results.get(timeout=60) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
    assert [0] * count == [process.exitcode for process in processes]
    return returned
