"""`scalepy worker APP`: run a queue's worker until SIGTERM or SIGINT, with a status line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from scalepy._callables import is_async_callable
from scalepy.cli._loading import load_object
from scalepy.queue import Worker

if TYPE_CHECKING:
    from collections.abc import Callable

    from scalepy.queue import Queue

__all__ = ("add_worker_command", "run_worker")

_logger = logging.getLogger("scalepy.cli")


def add_worker_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `worker` to the command line."""
    parser = commands.add_parser(
        "worker",
        help="run a queue's jobs",
        description="Run a queue's jobs until SIGTERM or SIGINT; a second signal exits at "
        "once (unfinished jobs then return to the queue when their lease expires).",
    )
    parser.add_argument("app", help="the queue, as module:attribute")
    parser.add_argument("--concurrency", type=int, default=10, help="jobs at once (default 10)")
    parser.add_argument("--lease", type=float, default=30.0, help="lease in seconds (default 30)")
    parser.add_argument(
        "--grace", type=float, default=0.0, help="seconds to let jobs finish on stop (default 0)"
    )
    parser.add_argument(
        "--startup",
        type=_hook,
        metavar="MODULE:ATTR",
        help="async callable run before the first job; its result is the worker's state, "
        "which tasks read with scalepy.queue.worker_state() (e.g. an open PoolManager)",
    )
    parser.add_argument(
        "--shutdown",
        type=_hook,
        metavar="MODULE:ATTR",
        help="async callable given that state once the worker stopped (e.g. to close it)",
    )
    parser.add_argument(
        "--status-interval",
        type=float,
        default=10.0,
        help="seconds between status lines, 0 for none (default 10)",
    )
    parser.set_defaults(handler=run_worker)


async def run_worker(queue: Queue, args: argparse.Namespace) -> int:
    """Run the worker as `args` say; the first SIGTERM/SIGINT stops it gracefully."""
    worker = Worker(
        queue,
        concurrency=args.concurrency,
        lease=args.lease,
        grace=args.grace,
        startup=args.startup,
        shutdown=args.shutdown,
    )
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stopping.is_set():
            _logger.warning("second %s: exiting at once", signal.Signals(signum).name)
            os._exit(128 + signum)
        _logger.info("%s: stopping", signal.Signals(signum).name)
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    tasks = ", ".join(sorted(queue.tasks)) or "none"
    _logger.info(
        "worker for queue %r on %s: concurrency %d, lease %g s; tasks: %s",
        queue.name, queue.config, args.concurrency, args.lease, tasks,
    )  # fmt: skip
    run = loop.create_task(worker.run())
    status = None
    if args.status_interval > 0:
        status = loop.create_task(_report(worker, args.status_interval))
    stop = loop.create_task(stopping.wait())
    try:
        await asyncio.wait((run, stop), return_when=asyncio.FIRST_COMPLETED)
        await worker.stop()
        await run
    finally:
        for task in (stop, status):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await queue.aclose()
    _logger.info("stopped: %s", _status(worker))
    return 0


def _hook(reference: str) -> Callable[..., Any]:
    """The async callable `module:attribute` names (an argparse type: errors are usage errors)."""
    try:
        value = load_object(reference)
    except (ValueError, ImportError, AttributeError) as exc:
        raise argparse.ArgumentTypeError(f"cannot load {reference}: {exc}") from exc
    if not callable(value) or not is_async_callable(value):
        raise argparse.ArgumentTypeError(
            f"{reference} is a {type(value).__name__}, not an async callable"
        )
    return value


async def _report(worker: Worker, interval: float) -> None:
    previous, since = worker.statistics().completed, time.monotonic()
    while True:
        await asyncio.sleep(interval)
        completed, now = worker.statistics().completed, time.monotonic()
        rate = (completed - previous) / (now - since)
        previous, since = completed, now
        try:
            stats = await worker.queue.stats()
        except Exception as exc:  # the status line must not stop the worker
            queue = f"queue unreadable: {exc}"
        else:
            queue = (
                f"queue: {stats.queued} queued, {stats.scheduled} scheduled, "
                f"{stats.active} active, {stats.dead} dead"
            )
        _logger.info("%s, %.1f jobs/s | %s", _status(worker), rate, queue)


def _status(worker: Worker) -> str:
    s = worker.statistics()
    return (
        f"running {s.running}/{worker.concurrency}, completed {s.completed}, failed {s.failed}, "
        f"retried {s.retried}, dead {s.dead_lettered}, lost {s.lost}"
    )
