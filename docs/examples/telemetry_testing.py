"""Testing instrumentation: RecordingInstrumentation keeps metrics, spans and events in memory."""

from __future__ import annotations

import asyncio
import os

from scalepy.backends.redis import RedisClient
from scalepy.telemetry import NOOP, Instrumentation, Metric, MetricKind, combine, get_default
from scalepy.testing import RecordingInstrumentation

REDIS_URL = os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

LOOKUPS = Metric(
    name="docs.lookups",
    kind=MetricKind.COUNTER,
    description="Lookups, by outcome.",
    labels=("outcome",),
)


class Directory:
    """A toy component instrumented like scalepy's primitives."""

    def __init__(self, *, instrumentation: Instrumentation | None = None) -> None:
        self._instrumentation = instrumentation or get_default()  # once, at construction
        self._lookups = self._instrumentation.metric(LOOKUPS)
        self._entries = {"ada": "Ada Lovelace"}

    def lookup(self, name: str) -> str | None:
        """Return the full name for `name`, reporting the outcome."""
        with self._instrumentation.span("docs.lookup", {"name": name}) as span:
            found = self._entries.get(name)
            span.set_attribute("found", found is not None)
            self._lookups.record(1, {"outcome": "hit" if found else "miss"})
            return found


async def main() -> None:
    """Assert on what a component and RedisClient reported."""
    recording = RecordingInstrumentation()
    directory = Directory(instrumentation=recording)
    assert directory.lookup("ada") == "Ada Lovelace"
    assert directory.lookup("bob") is None
    assert recording.value("docs.lookups") == 2
    assert recording.value("docs.lookups", outcome="miss") == 1
    assert [span.attributes["found"] for span in recording.spans] == [True, False]

    async with RedisClient.from_url(REDIS_URL, instrumentation=recording) as redis:
        await asyncio.gather(*(redis.execute("PING") for _ in range(5)))
    assert recording.count("scalepy.redis.pipeline.size") == 1
    assert recording.value("scalepy.redis.pipeline.size") == 5

    # Stricter than real backends: an undeclared label is a bug, caught at once.
    try:
        recording.metric(LOOKUPS).record(1, {"user": "ada"})
    except ValueError:  # ConfigurationError
        pass
    else:
        raise AssertionError("an undeclared label must be rejected")

    # combine() fans out to several instrumentations; no-op members are dropped.
    other = RecordingInstrumentation()
    both = combine(recording, NOOP, other)
    Directory(instrumentation=both).lookup("ada")
    assert (recording.value("docs.lookups"), other.value("docs.lookups")) == (3, 1)
    assert combine(NOOP) is NOOP


if __name__ == "__main__":
    asyncio.run(main())
