"""`Abilities`: what a queue's store offers beyond `QueueStore`, asked once, with fallbacks.

The one place the queue checks a store's optional abilities (the protocols of
`_store.py`); the worker, the acks, the heartbeat and the result waiters take
what this gives them and never ask the store again:

- no `WakingQueueStore`: idle workers sleep their poll interval;
- no `AnnouncingQueueStore`: result waiters re-read their job every `POLL` seconds;
- no `OrderedAcksQueueStore`: acks are taken before each claim is sent;
- no `ConnectingQueueStore`: leases are renewed from a task of the worker's loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalepy.queue._store import (
    AnnouncingQueueStore,
    ConnectingQueueStore,
    OrderedAcksQueueStore,
    WakingQueueStore,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from scalepy.queue._store import QueueStore, SettledFeed

__all__ = ("POLL", "Abilities", "abilities")

POLL = 0.1
"""Seconds between a result waiter's re-reads of its job when no feed announces it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Abilities:
    """A store's optional abilities, each the store's own or its fallback."""

    wait_for_jobs: Callable[[float], Awaitable[None]]
    """Waits up to the given seconds, less if the store wakes idle workers."""
    settled_feed: Callable[[Callable[[list[str]], None]], SettledFeed] | None
    """Makes a feed of settled job ids; `None` when the store announces none."""
    acks_ordered: Callable[[], bool]
    """Whether an ack sent now runs before a claim sent after it; never, if not promised."""
    connector: Callable[[], QueueStore] | None
    """Opens the store on a connection of its own, in another thread; `None` if it cannot."""

    @property
    def recheck(self) -> float:
        """Seconds between a result waiter's re-reads: rare with a feed, `POLL` without."""
        return 1.0 if self.settled_feed is not None else POLL


def abilities(store: QueueStore) -> Abilities:
    """Ask `store` once what it offers beyond `QueueStore`."""
    return Abilities(
        wait_for_jobs=store.wait_for_jobs if isinstance(store, WakingQueueStore) else asyncio.sleep,
        settled_feed=store.settled_feed if isinstance(store, AnnouncingQueueStore) else None,
        acks_ordered=_reader(store) if isinstance(store, OrderedAcksQueueStore) else _never,
        connector=store.connector() if isinstance(store, ConnectingQueueStore) else None,
    )


def _reader(store: OrderedAcksQueueStore) -> Callable[[], bool]:
    return lambda: store.acks_ordered


def _never() -> bool:
    return False
