"""One worker process of the multi-process metrics test (run with `python -m`).

It opens a pool of two connections reporting to Prometheus (multiprocess mode,
PROMETHEUS_MULTIPROC_DIR set by the parent), lends both, lets a third acquire
time out, returns one, prints its pid, and holds the other until a line
arrives on stdin.

    python -m tests.pools.metrics_process DSN APPLICATION_NAME
"""

from __future__ import annotations

import asyncio
import os
import sys

from prometheus_client import CollectorRegistry

from scalepy.integrations.prometheus import PrometheusInstrumentation
from scalepy.pools import PoolOptions, PoolTimeoutError, PostgresPool


async def main(dsn: str, application_name: str) -> None:
    """Leave the pool with one connection used, one idle, one timeout; wait for the parent."""
    instrumentation = PrometheusInstrumentation(registry=CollectorRegistry())
    options = PoolOptions(min_size=2, max_size=2, application_name=application_name)
    pool = PostgresPool(dsn, options=options, instrumentation=instrumentation)
    async with pool, pool.acquire():
        async with pool.acquire():
            try:
                async with pool.acquire(timeout=0.05):
                    pass
            except PoolTimeoutError:
                pass
        print(os.getpid(), flush=True)
        await asyncio.to_thread(sys.stdin.readline)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
