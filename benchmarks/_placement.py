"""Which CPU the Redis server and the benchmark's producers run on.

On a virtual machine a round trip between two processes costs far more when they sit
on different virtual CPUs (the sleeping CPU has to be woken by the hypervisor) than
on the same one: on the 2-core VMs here a bare PING round trip took about 15 us on
one CPU and 52 us across two. Left to the scheduler, each contender lands on one or
the other by chance, and a one-caller figure swings by 2x between runs. So the
benchmark pins a local Redis to one CPU for the enqueue measurements and runs each
contender's producer on that CPU, then on another one, and reports both.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from redis.asyncio import Redis

REDIS_CPU = 0


@contextlib.asynccontextmanager
async def pinned_redis(redis: Redis) -> AsyncIterator[list[tuple[str, set[int] | None]]]:
    """Pin the Redis server to `REDIS_CPU` while in the block, if it runs on this machine.

    Yields:
        The placements to measure: (title, the producers' CPUs); one unpinned
        placement (`None`) when Redis cannot be pinned (remote, one CPU, no right).
    """
    info = await redis.info("server")
    pid, port = int(info["process_id"]), int(info["tcp_port"])
    cpus = os.sched_getaffinity(0)
    previous = _affinity_of_local_redis(pid, port)
    if previous is None or len(cpus) < 2 or REDIS_CPU not in cpus:
        yield [("producer where the scheduler put it", None)]
        return
    os.sched_setaffinity(pid, {REDIS_CPU})
    try:
        other = min(cpus - {REDIS_CPU})
        yield [
            (f"producer on Redis' CPU ({REDIS_CPU})", {REDIS_CPU}),
            (f"producer on another CPU ({other}) than Redis ({REDIS_CPU})", {other}),
        ]
    finally:
        os.sched_setaffinity(pid, previous)


def _affinity_of_local_redis(pid: int, port: int) -> set[int] | None:
    """The CPUs of process `pid` if it is the Redis server listening on `port` here."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        if "redis-server" not in command or f":{port}" not in command:
            return None
        affinity = os.sched_getaffinity(pid)
        os.sched_setaffinity(pid, affinity)  # may we change it? (PermissionError if not)
    except OSError:
        return None
    return affinity
