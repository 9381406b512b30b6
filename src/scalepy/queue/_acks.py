"""`Acks`: the outcomes of attempts finished in one event-loop tick go to the store together.

Each finished attempt adds its settlement; the first one of a tick schedules a
flush for the next, which sends everything collected in `ack.lua` calls of up to
`chunk` attempts, through the client's automatic pipeline.

A call Redis failed to take is retried with a growing delay until it is taken:
an expired lease is lost only once a claim reaps it, so an outcome recorded
after an outage longer than the lease still counts, provided it reaches Redis
before the worker's next claim. The worker therefore waits for `sent` before
each claim: every batch written to the connection, and every one that failed
taken since; while the store cannot promise that a written batch runs before a
claim written after it (`OrderedAcksQueueStore.acks_ordered`: Redis may have
lost the script; a store without that ability never promises it), every batch
taken. Only a failure that is not an outage (an error reply) is given up after
`retry_for` seconds, and at shutdown `drain()` gives up whatever Redis has not
taken within `retry_for`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Generic, TypeVar

from scalepy.errors import BackendError, BackendUnavailable

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
        acks_ordered: Whether the store promises now that an ack sent runs before
            a claim sent after it (see `Abilities.acks_ordered`).
        result_ttl_ms: How long settled jobs keep their result, ms.
        on_settled: Called with the items of a batch and `ack.lua`'s code for each
            (`None` for all when the batch was given up).
        retry_for: Seconds to keep retrying a batch Redis answered with an error,
            and a batch still unsent when `drain()` starts.
        unknown_limit: Put-backs of a job of a task its workers do not have
            before it is dead-lettered (see `QueueStore.ack`).
        chunk: Settlements per script call.
    """

    __slots__ = (
        "_acks_ordered",
        "_chunk",
        "_clear",
        "_flushing",
        "_give_up_at",
        "_on_settled",
        "_pending",
        "_result_ttl_ms",
        "_retry_for",
        "_sending",
        "_store",
        "_unknown_limit",
        "_unsent",
    )

    def __init__(
        self,
        store: QueueStore,
        *,
        acks_ordered: Callable[[], bool],
        result_ttl_ms: int,
        on_settled: Callable[[list[T], list[int] | None], None],
        retry_for: float,
        unknown_limit: int = 0,
        chunk: int = 500,
    ) -> None:
        self._store = store
        self._acks_ordered = acks_ordered
        self._unknown_limit = unknown_limit
        self._result_ttl_ms = result_ttl_ms
        self._on_settled = on_settled
        self._retry_for = retry_for
        self._chunk = chunk
        self._pending: list[tuple[T, Settlement]] = []
        self._flushing = False
        self._sending: set[asyncio.Task[None]] = set()
        self._unsent = 0  # batches not written yet, or failed and not taken since
        self._clear = asyncio.Event()
        self._clear.set()
        self._give_up_at: float | None = None  # set by drain()

    @property
    def sent(self) -> bool:
        """Whether every batch was written to Redis, and every one that failed taken since."""
        return self._unsent == 0

    async def wait_sent(self) -> None:
        """Wait until `sent` holds."""
        while self._unsent:
            await self._clear.wait()

    def add(self, item: T, settlement: Settlement) -> None:
        """Queue a settlement for the next flush."""
        self._pending.append((item, settlement))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def drain(self) -> None:
        """Send whatever is pending and wait until every batch is answered or given up.

        Batches Redis has not taken `retry_for` seconds from now are given up.
        """
        self._give_up_at = asyncio.get_running_loop().time() + self._retry_for
        self._flush()
        while self._sending:
            await asyncio.wait(set(self._sending))
        self._give_up_at = None

    def _flush(self) -> None:
        self._flushing = False
        pending, self._pending = self._pending, []
        for i in range(0, len(pending), self._chunk):
            self._hold()
            task = asyncio.get_running_loop().create_task(self._send(pending[i : i + self._chunk]))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    def _hold(self) -> None:
        self._unsent += 1
        self._clear.clear()

    def _release(self) -> None:
        self._unsent -= 1
        if not self._unsent:
            self._clear.set()

    async def _send(self, batch: list[tuple[T, Settlement]]) -> None:
        loop = asyncio.get_running_loop()
        settlements = [settlement for _, settlement in batch]
        # Released before the first call, which writes the batch in this very step,
        # ahead of any claim: a claim in the same pipeline comes after it. Unless
        # the ack script may be missing: the claim would run first, while it is resent.
        early = self._acks_ordered()
        if early:
            self._release()
        failed_at: float | None = None
        delay = 0.05
        try:
            while True:
                try:
                    codes = await self._store.ack(
                        settlements,
                        result_ttl_ms=self._result_ttl_ms,
                        unknown_limit=self._unknown_limit,
                    )
                except BackendError as exc:
                    if failed_at is None:
                        failed_at = loop.time()
                        if early:
                            self._hold()  # until Redis takes it: no claim may overtake it
                    if self._gives_up(exc, failed_at, loop.time() + delay):
                        _logger.error("gave up recording %d job outcomes: %s", len(batch), exc)
                        self._on_settled([item for item, _ in batch], None)
                        return
                    _logger.warning(
                        "could not record %d job outcomes, retrying: %s", len(batch), exc
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
                else:
                    self._on_settled([item for item, _ in batch], codes)
                    return
        finally:
            if failed_at is not None or not early:
                self._release()

    def _gives_up(self, exc: BackendError, failed_at: float, retry_at: float) -> bool:
        """Whether a batch that failed first at `failed_at` is given up rather than retried."""
        if self._give_up_at is not None and retry_at > self._give_up_at:
            return True  # shutting down
        # An outage ends: retry until it does. An error reply may not: bound it.
        return not isinstance(exc, BackendUnavailable) and retry_at > failed_at + self._retry_for
