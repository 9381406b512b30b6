"""When Redis is down the cached function still answers, and Redis is soon not even tried."""

from __future__ import annotations

import asyncio
import socket
import time

from scalepy.cache import Cache


def unused_port() -> int:
    """Return a local TCP port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def main() -> None:
    """Call a cached function twenty times against a Redis that is not there."""
    cache = Cache(f"redis://127.0.0.1:{unused_port()}/0", namespace="docs-outage", timeout=0.05)
    calls = 0

    @cache.cached(ttl=60)
    async def exchange_rate(currency: str) -> float:
        nonlocal calls
        calls += 1
        return 1.08

    started = time.monotonic()
    rates = [await exchange_rate("EUR") for _ in range(20)]
    elapsed = time.monotonic() - started

    # Every call was answered by the function itself (fail open) ...
    assert (rates, calls) == ([1.08] * 20, 20)
    # ... and quickly: after a few refused connections the guard opens, and later
    # calls skip Redis entirely until a probe finds it back (by itself).
    stats = cache.statistics()
    assert (stats.errors, stats.backend_available) == (20, False)
    assert elapsed < 1.0
    await cache.aclose()


if __name__ == "__main__":
    asyncio.run(main())
