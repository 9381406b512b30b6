"""Two replicas share one breaker through Redis: one sees the failures, both open."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid

from scalepy.breaker import (
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    RedisSharedState,
    StateChange,
)

REDIS_URL = os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class Replica:
    """One service replica's breaker on the `postgres` dependency."""

    def __init__(self, namespace: str) -> None:
        self.opened = asyncio.Event()
        self.shared = RedisSharedState(REDIS_URL, namespace=namespace, flush_interval=0.5)
        self.breaker = CircuitBreaker(
            "postgres",
            minimum_calls=4,
            window_size=10,
            shared=self.shared,
            listeners=[self.on_change],
        )

    def on_change(self, change: StateChange) -> None:
        """A listener: note when this replica's breaker opens."""
        if change.to_state is BreakerState.OPEN:
            self.opened.set()


async def main() -> None:
    """Replica a's calls fail; replica b, which made no call at all, opens too."""
    namespace = f"example-{uuid.uuid4().hex[:8]}"  # one namespace per application
    a, b = Replica(namespace), Replica(namespace)
    await a.shared.open()  # at application startup
    await b.shared.open()

    @a.breaker
    async def query() -> None:
        raise ConnectionError("postgres is down")

    for _ in range(4):  # minimum_calls failures: a opens, and publishes it
        with contextlib.suppress(ConnectionError):
            await query()
    assert a.breaker.state is BreakerState.OPEN
    async with asyncio.timeout(5):
        await b.opened.wait()  # over pub/sub, in milliseconds

    @b.breaker
    async def read() -> str:
        return "rows"

    try:
        await read()
    except CircuitOpenError as rejected:
        assert rejected.retry_after > 0  # b waits out the same open period as a
    else:
        raise AssertionError("b should reject while the shared breaker is open")
    await a.breaker.aclose()  # at shutdown: stops the sharing
    await b.breaker.aclose()


if __name__ == "__main__":
    asyncio.run(main())
