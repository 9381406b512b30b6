"""`scalepy queue stats|dead|requeue|purge APP`: look into a queue, re-drive or purge dead jobs."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from scalepy.queue import Queue

__all__ = ("add_queue_commands",)


def add_queue_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `queue stats`, `queue dead`, `queue requeue` and `queue purge` to the command line."""
    parser = commands.add_parser("queue", help="inspect a queue, re-drive or purge dead jobs")
    actions = parser.add_subparsers(dest="action", required=True)
    stats = actions.add_parser("stats", help="count the jobs by state")
    stats.add_argument("app", help="the queue, as module:attribute")
    stats.set_defaults(handler=_stats)
    dead = actions.add_parser("dead", help="list dead-lettered jobs, newest first")
    dead.add_argument("app", help="the queue, as module:attribute")
    dead.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    dead.set_defaults(handler=_dead)
    requeue = actions.add_parser("requeue", help="re-queue dead jobs with fresh retries")
    requeue.add_argument("app", help="the queue, as module:attribute")
    requeue.add_argument("job_ids", nargs="*", metavar="JOB_ID", help="jobs to re-queue")
    requeue.add_argument("--all", action="store_true", help="every dead job (up to --limit)")
    requeue.add_argument("--limit", type=int, default=1000, help="with --all (default 1000)")
    requeue.set_defaults(handler=_requeue)
    purge = actions.add_parser("purge", help="delete dead jobs for good, oldest first")
    purge.add_argument("app", help="the queue, as module:attribute")
    purge.add_argument("job_ids", nargs="*", metavar="JOB_ID", help="jobs to delete")
    purge.add_argument(
        "--older-than", type=float, metavar="SECONDS", help="only jobs dead this long or longer"
    )
    purge.add_argument("--limit", type=int, default=1000, help="without ids (default 1000)")
    purge.add_argument("--yes", action="store_true", help="with no ids nor --older-than: all")
    purge.set_defaults(handler=_purge)


async def _stats(queue: Queue, args: argparse.Namespace) -> int:
    async with queue:
        stats = await queue.stats()
    print(f"queue {queue.name!r} on {queue.store if queue.config is None else queue.config}")
    for state in ("queued", "scheduled", "active", "dead"):
        print(f"  {state:<10}{getattr(stats, state):>10}")
    return 0


async def _dead(queue: Queue, args: argparse.Namespace) -> int:
    async with queue:
        jobs = await queue.dead(args.limit)
    for job in jobs:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(job.finished_at or 0))
        error = (job.error or "").partition("\n")[0]
        print(f"{job.id}  {when}Z  {job.task}  attempts={job.attempts}  {error}")
    if not jobs:
        print(f"no dead job in queue {queue.name!r}")
    return 0


async def _requeue(queue: Queue, args: argparse.Namespace) -> int:
    if bool(args.job_ids) == args.all:
        print("scalepy: give JOB_IDs or --all (not both)", file=sys.stderr)
        return 2
    async with queue:
        count = await queue.requeue(None if args.all else args.job_ids, limit=args.limit)
    print(f"re-queued {count} job{'s' * (count != 1)}")
    return 0


async def _purge(queue: Queue, args: argparse.Namespace) -> int:
    if args.job_ids and args.older_than is not None:
        print("scalepy: give JOB_IDs or --older-than (not both)", file=sys.stderr)
        return 2
    if not args.job_ids and args.older_than is None and not args.yes:
        # Deleting is final: every dead job goes only when asked for in so many words.
        print(
            "scalepy: give JOB_IDs, --older-than SECONDS, or --yes for every dead job",
            file=sys.stderr,
        )
        return 2
    async with queue:
        count = await queue.purge_dead(
            args.job_ids or None, older_than=args.older_than, limit=args.limit
        )
    which = "" if args.older_than is None else f", dead {args.older_than:g} s or longer"
    print(f"purged {count} dead job{'s' * (count != 1)}{which}")
    return 0
