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
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
from typing import TYPE_CHECKING

from scalepy.errors import ConfigurationError, ScalepyError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scalepy.queue import Queue

__all__ = ("load_object", "load_queue", "main")


def load_object(reference: str) -> object:
    """Import `module:attribute` and return what it names.

    Args:
        reference: E.g. `"app.tasks:startup"`; the current directory is importable.

    Raises:
        ValueError: A malformed reference.
        ImportError: The module cannot be imported.
        AttributeError: The module has no such attribute.
    """
    module_name, colon, attribute = reference.partition(":")
    if not colon or not module_name or not attribute:
        raise ValueError(f"expected module:attribute, e.g. app.tasks:queue; got {reference!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return getattr(importlib.import_module(module_name), attribute)


def load_queue(reference: str) -> Queue:
    """Import `module:attribute` and return the queue it names.

    Args:
        reference: E.g. `"app.tasks:queue"`; the current directory is importable.

    Raises:
        ValueError: A malformed reference, or one naming something that is not a `Queue`.
        ConfigurationError: A `memory://` queue: its jobs live in the process that
            made them, so no command of another process can see them.
        ImportError: The module cannot be imported.
        AttributeError: The module has no such attribute.
    """
    from scalepy.backends import MemoryConfig
    from scalepy.queue import Queue

    value = load_object(reference)
    if not isinstance(value, Queue):
        raise ValueError(f"{reference} is a {type(value).__name__}, not a scalepy.queue.Queue")
    if isinstance(value.config, MemoryConfig):
        raise ConfigurationError(
            f"{reference} is a memory:// queue: its jobs live only in the process that "
            "enqueues them, so run its Worker there, or give the queue a redis:// URL"
        )
    return value


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
        status: int = asyncio.run(args.handler(queue, args))
    except ScalepyError as exc:
        print(f"scalepy: {exc}", file=sys.stderr)
        return 1
    return status
