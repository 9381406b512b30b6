"""A queue store of your own, checked by the contract in `scalepy.testing`: run this file."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pytest

from scalepy.errors import JobFailed
from scalepy.queue import (
    ConnectingQueueStore,
    MemoryQueueStore,
    Queue,
    Settlement,
    WakingQueueStore,
    Worker,
)
from scalepy.testing import QueueStoreContract

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable


class AlertingStore(MemoryQueueStore):
    """The memory store, calling `on_dead` with each job that an outcome dead-letters."""

    def __init__(self, on_dead: Callable[[str], None]) -> None:
        super().__init__()
        self.on_dead = on_dead

    async def ack(
        self, settlements: Iterable[Settlement], *, result_ttl_ms: int, unknown_limit: int = 0
    ) -> list[int]:
        """Settle the attempts, then report the jobs that went dead (code 3)."""
        settlements = list(settlements)
        codes = await super().ack(
            settlements, result_ttl_ms=result_ttl_ms, unknown_limit=unknown_limit
        )
        for (job_id, *_), code in zip(settlements, codes, strict=True):
            if code == 3:
                self.on_dead(job_id)
        return codes


class TestAlertingStore(QueueStoreContract):
    """Every check of the contract on `AlertingStore`, and its answers against the memory store."""

    @pytest.fixture
    def store(self) -> AlertingStore:
        """A store holding no job."""
        return AlertingStore(on_dead=lambda job_id: None)


def test_abilities_are_declared_by_protocol() -> None:
    """It inherits the memory store's abilities: it wakes workers, but opens in no thread."""
    store = AlertingStore(on_dead=print)
    assert isinstance(store, WakingQueueStore)
    assert not isinstance(store, ConnectingQueueStore)


async def test_a_queue_runs_on_it() -> None:
    """A `Queue` takes the store as its backend; a job that fails for good raises the alert."""
    dead: list[str] = []
    async with Queue(AlertingStore(on_dead=dead.append), name="alerts") as queue:

        @queue.task(retries=0)
        async def fail() -> None:
            raise RuntimeError("no")

        job = await fail.enqueue()
        async with Worker(queue):
            with pytest.raises(JobFailed):
                await job.result(timeout=10)
    assert dead == [job.id]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]))
