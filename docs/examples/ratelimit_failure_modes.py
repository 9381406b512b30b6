"""What a RateLimiter does when Redis is gone: fail open, fail closed, or decide locally."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import TYPE_CHECKING

from scalepy.errors import BackendUnavailable
from scalepy.ratelimit import MemoryRateLimitStore, Outcome, RateLimiter, TokenBucket
from scalepy.testing import FakeClock, RecordingInstrumentation

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scalepy.ratelimit import Policy, PolicyDecision

BUCKET = TokenBucket(capacity=2, refill_rate=1.0)


def unused_port() -> int:
    """Return a local TCP port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class FlakyStore(MemoryRateLimitStore):
    """A store that fails while `down` is set, standing in for a Redis outage."""

    def __init__(self, *, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.down = False
        self.calls = 0

    async def acquire(
        self, key: str, policies: Sequence[Policy], cost: int, *, commit: bool = True
    ) -> tuple[PolicyDecision, ...]:
        """Count the call; fail while down."""
        self.calls += 1
        if self.down:
            raise BackendUnavailable("connection refused", backend="flaky://")
        return await super().acquire(key, policies, cost, commit=commit)


async def failure_policies() -> None:
    """The three failure policies, against a port where no Redis listens."""
    url = f"redis://127.0.0.1:{unused_port()}/0"

    async with RateLimiter(url, on_failure="fail_open", timeout=0.1) as limiter:
        decision = await limiter.acquire("user:ada", BUCKET)  # the default policy
        assert (decision.allowed, decision.outcome) == (True, Outcome.FAIL_OPEN)

    async with RateLimiter(url, on_failure="fail_closed", timeout=0.1) as limiter:
        decision = await limiter.acquire("user:ada", BUCKET)
        assert (decision.allowed, decision.outcome) == (False, Outcome.FAIL_CLOSED)
        assert decision.retry_after > 0

    # "local": an in-process limiter with the same policies decides until Redis is back.
    async with RateLimiter(url, on_failure="local", timeout=0.1) as limiter:
        decisions = [await limiter.acquire("user:ada", BUCKET) for _ in range(3)]
        assert [d.outcome for d in decisions] == [Outcome.LOCAL] * 3
        assert [d.allowed for d in decisions] == [True, True, False]

    # A Redis that accepts the connection but never answers costs at most `timeout`.
    with socket.socket() as frozen:
        frozen.bind(("127.0.0.1", 0))
        frozen.listen()
        port = frozen.getsockname()[1]
        async with RateLimiter(f"redis://127.0.0.1:{port}/0", timeout=0.1) as limiter:
            started = time.monotonic()
            decision = await limiter.acquire("user:ada", BUCKET)
            assert decision.outcome is Outcome.FAIL_OPEN
            assert time.monotonic() - started < 0.5


async def guard_and_recovery() -> None:
    """After 3 failures the backend is skipped; a probe later finds it back."""
    clock = FakeClock()
    store = FlakyStore(clock=clock)
    recording = RecordingInstrumentation()
    limiter = RateLimiter(store, on_failure="fail_open", clock=clock, instrumentation=recording)

    store.down = True
    for _ in range(10):
        assert (await limiter.acquire("user:ada", BUCKET)).outcome is Outcome.FAIL_OPEN
    assert store.calls == 3  # the guard opened: 7 calls never waited on the backend
    assert (
        recording.value("scalepy.ratelimit.backend.errors", {"error.type": "BackendUnavailable"})
        == 3
    )
    assert (
        recording.value("scalepy.ratelimit.decisions", {"scalepy.ratelimit.result": "fail_open"})
        == 10
    )

    store.down = False
    clock.advance(0.5)  # the guard's first delay: the next call is a probe
    assert (await limiter.acquire("user:ada", BUCKET)).outcome is Outcome.ALLOWED
    assert (await limiter.acquire("user:ada", BUCKET)).outcome is Outcome.ALLOWED
    assert store.calls == 5  # closed again: every call reaches the backend


async def shadow_mode() -> None:
    """shadow=True decides and reports, but never denies: try a policy out safely."""
    recording = RecordingInstrumentation()
    limiter = RateLimiter("memory://", shadow=True, clock=FakeClock(), instrumentation=recording)
    decisions = [await limiter.acquire("user:ada", BUCKET) for _ in range(3)]
    assert all(decision.allowed for decision in decisions)
    assert decisions[-1].outcome is Outcome.LIMITED  # would have been denied
    assert (
        recording.value("scalepy.ratelimit.decisions", {"scalepy.ratelimit.result": "limited"}) == 1
    )
    assert [event.name for event in recording.events] == ["scalepy.ratelimit.limited"]


async def main() -> None:
    """Run the three demonstrations."""
    await failure_policies()
    await guard_and_recovery()
    await shadow_mode()


if __name__ == "__main__":
    asyncio.run(main())
