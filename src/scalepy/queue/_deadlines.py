"""`Deadlines`: ids with a time each, taken in time order: a Redis sorted set, in memory."""

from __future__ import annotations

import heapq
import math

__all__ = ("Deadlines",)


class Deadlines:
    """Maps ids to times in ms; `pop_due` takes them in (time, id) order, as ZRANGEBYSCORE.

    A heap holds every (time, id) ever set; an entry whose id has since moved to
    another time, or left, is skipped when it surfaces, so each change costs
    O(log n) and no search.
    """

    __slots__ = ("_at", "_heap")

    def __init__(self) -> None:
        self._at: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._at)

    def set(self, item: str, at: int) -> None:
        """Give `item` the time `at` (ZADD)."""
        self._at[item] = at
        heapq.heappush(self._heap, (at, item))

    def discard(self, item: str) -> bool:
        """Forget `item` (ZREM); returns whether it was there."""
        return self._at.pop(item, None) is not None

    def ranked(self) -> list[str]:
        """Every item in (time, id) order, as ZRANGE reads them."""
        return sorted(self._at, key=lambda item: (self._at[item], item))

    def first(self) -> int | None:
        """The earliest time, or `None` if there is none."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float, limit: float = math.inf) -> list[str]:
        """Remove and return up to `limit` items whose time is `now` or earlier, earliest first."""
        due: list[str] = []
        while len(due) < limit:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                break
            _, item = heapq.heappop(self._heap)
            del self._at[item]
            due.append(item)
        return due

    def _drop_stale(self) -> None:
        heap = self._heap
        while heap and self._at.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
