"""Real processes sharing one cache: one load per cold key, early refresh, L1 coherence.

The entry points live in tests/cache/processes.py; each process connects, then
waits at a barrier so all start together.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any

import pytest

from scalepy.backends.redis import RedisClient
from tests.cache import processes
from tests.support.processes import run_processes

PROCESSES = 4


async def redis_value(url: str, *command: str) -> Any:
    """Run one command on `url` and return its reply."""
    async with RedisClient.from_url(url) as client:
        return await client.execute(*command)


@pytest.mark.parametrize("target", ["standalone", "cluster"])
def test_four_processes_load_a_cold_key_exactly_once(
    target: str, redis_url: str, cluster_url: str
) -> None:
    """4 processes x 250 concurrent callers: one load in all, everyone gets its value."""
    url = redis_url if target == "standalone" else cluster_url
    namespace = f"stampede-{uuid.uuid4().hex}"
    counter = f"{namespace}:loads"
    try:
        reports = run_processes(
            processes.stampede,
            PROCESSES,
            lambda _, barrier, results: (url, namespace, counter, barrier, results),
        )
        assert b"1" == asyncio.run(redis_value(url, "GET", counter))
    finally:
        asyncio.run(redis_value(url, "DEL", counter))
    assert [([1], loads) for (_, loads) in reports] == reports  # everyone got load 1
    assert 1 == sum(loads for _, loads in reports)


def test_xfetch_refreshes_a_hot_key_before_expiry_without_a_burst(redis_url: str) -> None:
    """A key hit by 4 processes for 2 s (TTL 1 s, loads of 0.1 s) never expires under them.

    XFetch recomputes it before expiry, one load at a time, a few times a second at most.
    """
    namespace = f"xfetch-{uuid.uuid4().hex}"
    loads_key = f"{namespace}:loads"
    seconds = 2.0
    try:
        reports = run_processes(
            processes.hot_key,
            PROCESSES,
            lambda _, barrier, results: (
                redis_url,
                namespace,
                loads_key,
                seconds,
                barrier,
                results,
            ),
        )
        starts = sorted(
            float(s) for s in asyncio.run(redis_value(redis_url, "LRANGE", loads_key, "0", "-1"))
        )
    finally:
        asyncio.run(redis_value(redis_url, "DEL", loads_key))
    assert [0] * PROCESSES == [misses for misses, _ in reports]  # nobody waited for a load
    assert all(hits > 100 for _, hits in reports)
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert min(gaps) >= 0.1  # one load at a time: a load starts after the previous one ended
    assert len(starts) <= 1 + seconds / 0.3  # a refresh every 0.3 s at the very most


def test_writes_and_tag_invalidations_reach_every_process_within_the_bound(
    redis_url: str,
) -> None:
    """Process 0 sets a key, then invalidates a tag: every L1 follows within the bound.

    The other processes stop serving the old values from their L1 within the bus's
    staleness bound, and keep everything else.
    """
    namespace = f"coherence-{uuid.uuid4().hex}"
    reports = run_processes(
        processes.coherence,
        3,
        lambda index, barrier, results: (index, redis_url, namespace, barrier, results),
    )
    [writer] = [report for report in reports if report[0] == "writer"]
    readers = [report for report in reports if report[0] == "reader"]
    _, set_at, invalidated_at, bound = writer
    slack = 0.3  # a loaded machine's scheduling delay in the reading process
    for _, saw_set, saw_invalidation, local_hits, kept in readers:
        assert local_hits >= 3  # the second round came from the L1
        assert saw_set - set_at <= bound + slack
        assert saw_invalidation - invalidated_at <= bound + slack
        assert kept  # the untagged entry was not touched


L1_BOUND = 8 * 2**20
RSS_FACTOR = 1.5  # allocator slack and the estimate's error: measured 1.07 (10.7 before)


def test_the_l1_byte_bound_bounds_resident_memory() -> None:
    """Filling an 8 MiB L1 with 60,000 distinct records grows the process by < 1.5x 8 MiB.

    The records take about 170 bytes as JSON but over 1 KiB decoded: a bound on
    serialized bytes let such an L1 grow several times past its bound.
    """
    [(growth, entries, held)] = run_processes(
        processes.fill_l1, 1, lambda _, barrier, results: (60_000, L1_BOUND, barrier, results)
    )
    assert 0.9 * L1_BOUND <= held <= L1_BOUND  # full: every value read back entered it
    assert entries < 60_000  # the bound, not the entry count, limited the L1
    assert growth <= RSS_FACTOR * L1_BOUND, f"grew {growth / 2**20:.1f} MiB"
