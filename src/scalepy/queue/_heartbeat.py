"""`Heartbeat`: renews a worker's leases, from a thread when the store is shared.

A job that blocks the worker's event loop (CPU-bound code, a blocking call) must
not lose its lease to another process, so with Redis renewals cannot be a task of
that loop: the heartbeat runs its own event loop and Redis connection in a daemon
thread. A memory store lives in the worker's loop and only that loop may touch
it, so there the heartbeat is a task of that loop; a job blocking the loop then
blocks the renewals, but also every claim, and only a claim reaps an expired
lease. Either way it renews every lease the worker holds in one call per
interval, and hands the leases it found lost, and the jobs whose cancellation
was requested, back to the worker's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from scalepy.errors import BackendError

if TYPE_CHECKING:
    from scalepy.queue._store import QueueStore

__all__ = ("Heartbeat", "HeldLeases", "Report")

_logger = logging.getLogger("scalepy.queue")
_CHUNK = 500  # leases per script call

Report = Callable[[list[tuple[str, int]], list[tuple[str, int]]], None]
"""Called in the worker's loop with the (id, token) leases lost and those to cancel."""


class HeldLeases:
    """The leases a worker holds, id -> token; shared with its heartbeat thread."""

    __slots__ = ("_lock", "_tokens")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, int] = {}

    def add(self, job_id: str, token: int) -> None:
        """Hold the lease of `job_id` under `token`."""
        with self._lock:
            self._tokens[job_id] = token

    def discard(self, job_id: str, token: int) -> None:
        """Stop renewing `job_id`'s lease, unless it is held under a newer token now."""
        with self._lock:
            if self._tokens.get(job_id) == token:
                del self._tokens[job_id]

    def snapshot(self) -> list[tuple[str, int]]:
        """Return every lease held, as (id, token) pairs."""
        with self._lock:
            return list(self._tokens.items())

    def __len__(self) -> int:
        return len(self._tokens)


class Heartbeat:
    """Renews the leases in `held` every `interval` seconds, from a thread if it can.

    Args:
        store: The queue's store.
        connector: Opens the store again for the thread (see `Abilities.connector`);
            without one, leases are renewed from a task of `loop`.
        held: The leases to renew.
        lease_ms: The lease each renewal grants, ms.
        interval: Seconds between renewals.
        report: Called in `loop` with what a renewal found (see `Report`).
        loop: The worker's event loop.
    """

    __slots__ = (
        "_connector",
        "_held",
        "_interval",
        "_lease_ms",
        "_loop",
        "_own_loop",
        "_ready",
        "_report",
        "_stop",
        "_store",
        "_task",
        "_thread",
        "_wakeup",
    )

    def __init__(
        self,
        store: QueueStore,
        held: HeldLeases,
        *,
        connector: Callable[[], QueueStore] | None,
        lease_ms: int,
        interval: float,
        report: Report,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._store = store
        self._connector = connector
        self._held = held
        self._lease_ms = lease_ms
        self._interval = interval
        self._report = report
        self._loop = loop
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._own_loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start renewing: in a thread, whose loop runs when this returns, or in a task."""
        connect = self._connector
        if connect is None:
            self._task = self._loop.create_task(self._main(None))
            return
        self._thread = threading.Thread(
            target=self._run, args=(connect,), name="scalepy-heartbeat", daemon=True
        )
        self._thread.start()
        self._ready.wait()

    async def stop(self) -> None:
        """Stop renewing after the current renewal, and wait for the thread or task."""
        self._stop.set()
        if self._own_loop is not None and self._wakeup is not None:
            with contextlib.suppress(RuntimeError):  # its loop already ended
                self._own_loop.call_soon_threadsafe(self._wakeup.set)
        if self._task is not None:
            await self._task
        elif self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    def _run(self, connect: Callable[[], QueueStore]) -> None:
        asyncio.run(self._main(connect))

    async def _main(self, connect: Callable[[], QueueStore] | None) -> None:
        self._own_loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._ready.set()
        store = self._store if connect is None else connect()
        try:
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._interval):
                        await self._wakeup.wait()
                if self._stop.is_set():
                    break
                try:
                    await self.beat(store)
                except Exception:  # a bug must not end the renewals for good
                    _logger.exception("renewing job leases failed unexpectedly")
        finally:
            if connect is not None:  # the thread's own connection
                await store.aclose()

    async def beat(self, store: QueueStore) -> None:
        """Renew every held lease once and report what was lost or must be cancelled."""
        leases = self._held.snapshot()
        if not leases:
            return
        chunks = [leases[i : i + _CHUNK] for i in range(0, len(leases), _CHUNK)]
        try:
            replies = await asyncio.gather(
                *(store.extend(chunk, lease_ms=self._lease_ms) for chunk in chunks)
            )
        except BackendError as exc:
            _logger.warning("could not renew %d job leases: %s", len(leases), exc)
            return
        tokens = dict(leases)
        lost = [(job_id, tokens[job_id]) for reply in replies for job_id in reply[0]]
        cancel = [(job_id, tokens[job_id]) for reply in replies for job_id in reply[1]]
        if lost or cancel:
            with contextlib.suppress(RuntimeError):  # the worker's loop is closed
                self._loop.call_soon_threadsafe(self._report, lost, cancel)
