"""`Acks`: the outcomes of attempts finished in one event-loop tick go to the store together.

Each finished attempt adds its settlement; the first one of a tick schedules a
flush for the next, which sends everything collected in `ack.lua` calls of up to
`chunk` attempts, through the client's automatic pipeline. A failed call is
retried with a growing delay for up to `retry_for` seconds (the lease: past it,
the lease is lost anyway and the settlement would be refused).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Generic, TypeVar

from scalepy.errors import BackendError

if TYPE_CHECKING:
    from collections.abc import Callable

    from scalepy.queue._store import QueueStore, Settlement

__all__ = ("Acks",)

_logger = logging.getLogger("scalepy.queue")
T = TypeVar("T")


class Acks(Generic[T]):
    """Batches settlements; `on_settled` gets each batch's items and reply codes.

    Args:
        store: The queue's store.
        result_ttl_ms: How long settled jobs keep their result, ms.
        on_settled: Called with the items of a batch and `ack.lua`'s code for each
            (`None` for all when Redis could not be reached within `retry_for`).
        retry_for: Seconds to keep retrying a batch Redis failed to take.
        chunk: Settlements per script call.
    """

    __slots__ = (
        "_chunk",
        "_flushing",
        "_on_settled",
        "_pending",
        "_result_ttl_ms",
        "_retry_for",
        "_sending",
        "_store",
    )

    def __init__(
        self,
        store: QueueStore,
        *,
        result_ttl_ms: int,
        on_settled: Callable[[list[T], list[int] | None], None],
        retry_for: float,
        chunk: int = 500,
    ) -> None:
        self._store = store
        self._result_ttl_ms = result_ttl_ms
        self._on_settled = on_settled
        self._retry_for = retry_for
        self._chunk = chunk
        self._pending: list[tuple[T, Settlement]] = []
        self._flushing = False
        self._sending: set[asyncio.Task[None]] = set()

    def add(self, item: T, settlement: Settlement) -> None:
        """Queue a settlement for the next flush."""
        self._pending.append((item, settlement))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def drain(self) -> None:
        """Send whatever is pending and wait until every batch is answered or given up."""
        self._flush()
        while self._sending:
            await asyncio.wait(set(self._sending))

    def _flush(self) -> None:
        self._flushing = False
        pending, self._pending = self._pending, []
        for i in range(0, len(pending), self._chunk):
            task = asyncio.get_running_loop().create_task(self._send(pending[i : i + self._chunk]))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[T, Settlement]]) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._retry_for
        delay = 0.05
        while True:
            try:
                codes = await self._store.ack(
                    [settlement for _, settlement in batch], result_ttl_ms=self._result_ttl_ms
                )
            except BackendError as exc:
                if loop.time() + delay > give_up:
                    _logger.error("gave up recording %d job outcomes: %s", len(batch), exc)
                    self._on_settled([item for item, _ in batch], None)
                    return
                _logger.warning("could not record %d job outcomes, retrying: %s", len(batch), exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            else:
                self._on_settled([item for item, _ in batch], codes)
                return
