"""One contender's producer or worker in the queue benchmark, as a process of its own.

    python benchmarks/_queue_agent.py CONTENDER producer --url URL --name QUEUE
    python benchmarks/_queue_agent.py CONTENDER worker --url URL --name QUEUE \
        --keys PREFIX --concurrency 32

A producer answers one JSON command a line on stdin with one JSON line on stdout:

- `{"op": "throughput", "mode": "single" | "batch", "tasks": T, "seconds": S, "batch": B}`
  runs the shared harness (T callers back to back for S seconds; a call enqueues one
  job, or B jobs through the library's bulk path) and answers `{"jobs_per_second": X}`;
- `{"op": "fill", "jobs": N, "batch": B}` enqueues N jobs in batches of B, four batches
  in flight, and answers `{"jobs": N}`;
- `{"op": "pin", "cpus": [C, ...]}` restricts the producer process to those CPUs.

A worker imports its library, announces itself on `{PREFIX}:ready`, waits for a line
on stdin (the go signal), then runs the library's worker until SIGTERM, counting its
finished jobs into `{PREFIX}:done`. Every library's module imports only when chosen, so
arq's own venv never needs the others.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from _harness import throughput
from _queue_common import Adapter, Producer, completions

if TYPE_CHECKING:
    from typing import TextIO

FILL_IN_FLIGHT = 4  # batches a fill keeps in flight


def adapter(contender: str) -> Adapter:
    """Return the adapter of `contender`, importing its library only now."""
    if contender == "scalepy":
        from _queue_scalepy import ScalepyAdapter

        return ScalepyAdapter()
    if contender == "saq":
        from _queue_saq import SaqAdapter

        return SaqAdapter()
    if contender in {"arq", "arq-10ms"}:
        from _queue_arq import ArqAdapter

        return ArqAdapter(poll_delay=0.01 if contender == "arq-10ms" else None)
    if contender == "floor":
        from _queue_floor import FloorAdapter

        return FloorAdapter()
    if contender in {"taskiq-list", "taskiq-stream"}:
        from _queue_taskiq import TaskiqAdapter

        return TaskiqAdapter(stream=contender == "taskiq-stream")
    raise SystemExit(f"unknown contender {contender!r}")


async def fill(producer: Producer, jobs: int, batch: int) -> None:
    """Enqueue `jobs` jobs in batches of `batch`, a few batches in flight."""
    sizes = iter([batch] * (jobs // batch) + ([jobs % batch] if jobs % batch else []))

    async def enqueue_batches() -> None:
        for size in sizes:
            await producer.enqueue_batch(size)

    await asyncio.gather(*(enqueue_batches() for _ in range(FILL_IN_FLIGHT)))


async def answer(producer: Producer, command: dict[str, Any]) -> dict[str, float]:
    """Carry out one producer command."""
    if command["op"] == "pin":
        os.sched_setaffinity(0, command["cpus"])
        return {"cpus": len(command["cpus"])}
    if command["op"] == "fill":
        await fill(producer, command["jobs"], command["batch"])
        return {"jobs": command["jobs"]}
    tasks, seconds, batch = command["tasks"], command["seconds"], command["batch"]
    if command["mode"] == "single":
        sample = await throughput(producer.enqueue, tasks, seconds)
        return {"jobs_per_second": sample.per_second, "errors": sample.errors}
    sample = await throughput(lambda: producer.enqueue_batch(batch), tasks, seconds)
    return {"jobs_per_second": sample.per_second * batch, "errors": sample.errors}


async def produce(contender: Adapter, options: argparse.Namespace, replies: TextIO) -> None:
    """Serve producer commands until stdin closes."""
    producer = await contender.producer(options.url, options.name)
    try:
        while line := await asyncio.to_thread(sys.stdin.readline):
            print(json.dumps(await answer(producer, json.loads(line))), file=replies, flush=True)
    finally:
        await producer.aclose()


async def work(contender: Adapter, options: argparse.Namespace) -> None:
    """Announce readiness, wait for the go line, then run the library's worker until SIGTERM."""
    await completions.start(options.url, options.keys)
    await asyncio.to_thread(sys.stdin.readline)
    main = asyncio.current_task()
    assert main is not None  # always set inside asyncio.run()
    # Libraries that handle SIGTERM themselves replace this handler with theirs.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await contender.work(options.url, options.name, options.concurrency)
    finally:
        await completions.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("contender")
    parser.add_argument("role", choices=["producer", "worker"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--keys", default="")
    parser.add_argument("--concurrency", type=int, default=32)
    options = parser.parse_args()
    contender = adapter(options.contender)
    if options.role == "worker":
        asyncio.run(work(contender, options))
        return
    # Replies get a stdout of their own, so that nothing a library prints can garble them.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    asyncio.run(produce(contender, options, replies))


if __name__ == "__main__":
    main()
