"""Which CPU the benchmark's private Redis server and its producers run on.

On a virtual machine a round trip between two processes costs far more when they sit
on different virtual CPUs (the sleeping CPU has to be woken by the hypervisor) than
on the same one: on the 2-core VMs here a bare PING round trip took about 15 us on
one CPU and 52 us across two. Left to the scheduler, each contender lands on one or
the other by chance, and a one-caller figure swings by 2x between runs. So, when
asked (`--pin`), the benchmark pins the Redis server it started itself to one CPU and
runs each contender's producer on that CPU, then on another one, and reports both
beside the unpinned figures. A server the run did not start is never pinned.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

REDIS_CPU = 0


@contextlib.contextmanager
def pinned_redis(pid: int) -> Iterator[list[tuple[str, set[int]]]]:
    """Pin the run's own Redis server (`pid`) to `REDIS_CPU` while in the block.

    Yields:
        The placements to measure: (title, the producers' CPUs); none when this
        machine has fewer than two CPUs to choose from.
    """
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2 or REDIS_CPU not in cpus:
        yield []
        return
    previous = os.sched_getaffinity(pid)
    os.sched_setaffinity(pid, {REDIS_CPU})
    try:
        other = min(cpus - {REDIS_CPU})
        yield [
            (f"producer pinned to Redis' CPU ({REDIS_CPU})", {REDIS_CPU}),
            (f"producer pinned to another CPU ({other}) than Redis ({REDIS_CPU})", {other}),
        ]
    finally:
        os.sched_setaffinity(pid, previous)
