"""The `scalepy` command: run queue workers, inspect queues, re-drive or purge dead jobs.

```
scalepy worker app.tasks:queue --concurrency 32     # SIGTERM/SIGINT: graceful stop
scalepy worker app.tasks:queue --startup app.tasks:startup --shutdown app.tasks:shutdown
scalepy queue stats app.tasks:queue
scalepy queue dead app.tasks:queue --limit 20
scalepy queue requeue app.tasks:queue --all         # or: ... requeue APP JOB_ID...
scalepy queue purge app.tasks:queue --older-than 86400   # or: JOB_ID..., or --yes for all
```

`APP` names a `scalepy.queue.Queue` as `module:attribute`; the module is imported
with the current directory on `sys.path`, so its tasks register on the queue.
Also runs as `python -m scalepy.cli`.

The command runs on uvloop when it is installed (`--loop auto`), as uvicorn does.
asyncio's own loop reads each socket with `recv(256 KiB)`, then shrinks the result:
in a worker reading many small Redis and PostgreSQL replies, glibc's allocator keeps
ever more freed heap that way (resident memory grows for as long as it runs, none of
it live). uvloop reads into one reused buffer.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import TYPE_CHECKING, Literal

from scalepy.cli._loading import load_object as load_object
from scalepy.cli._loading import load_queue as load_queue
from scalepy.errors import ScalepyError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ("load_object", "load_queue", "main")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Args:
        argv: The arguments after the program name; `sys.argv[1:]` if `None`.
    """
    from scalepy.cli._inspect import add_queue_commands
    from scalepy.cli._worker import add_worker_command

    parser = argparse.ArgumentParser(prog="scalepy", description="scalepy's command line.")
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        help="logging level (default INFO)",
    )
    parser.add_argument(
        "--loop",
        default="auto",
        choices=("auto", "asyncio", "uvloop"),
        help="event loop: uvloop if installed (auto, the default), asyncio's, or uvloop",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_worker_command(commands)
    add_queue_commands(commands)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        queue = load_queue(args.app)
    except (ValueError, ImportError, AttributeError) as exc:
        print(f"scalepy: cannot load {args.app}: {exc}", file=sys.stderr)
        return 2
    try:
        loop_factory = _event_loop_factory(args.loop)
    except ImportError:
        print("scalepy: --loop uvloop: uvloop is not installed", file=sys.stderr)
        return 2
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            status: int = runner.run(args.handler(queue, args))
    except ScalepyError as exc:
        print(f"scalepy: {exc}", file=sys.stderr)
        return 1
    return status


def _event_loop_factory(
    loop: Literal["auto", "asyncio", "uvloop"],
) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What makes the command's event loop: uvloop's, or `None` for asyncio's default.

    Raises:
        ImportError: `loop` is `"uvloop"` and uvloop is not installed.
    """
    if loop == "asyncio":
        return None
    try:
        import uvloop  # optional: installed where it pays
    except ImportError:
        if loop == "uvloop":
            raise
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
