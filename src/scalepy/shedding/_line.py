"""`WaitLine`: the bounded line of calls waiting for a slot, adaptive LIFO with a CoDel target.

Calls wait by priority class, the highest class served first. Within a class the
line is first-in, first-out until a standing queue forms: the line has not been
empty for `interval` seconds and its oldest waiter has waited longer than `target`
(CoDel's test, Nichols and Jacobson 2012). While it stands, and for `interval`
after, the process is overloaded: the line serves last-in, first-out and sheds
every waiter that has waited longer than `stale_after` (`target` or less; "Fail
at Scale", Maurer 2015): a fresh call still has a client waiting for it, a stale
one has most likely timed out already, and serving it would add its wait to the
latency of what is served. Then it is first-in, first-out again until a standing
queue forms anew: a LIFO line that stayed so until it empties would, in front of a
closed loop of clients (each waiting for its answer before it sends again), never
empty, and starve and shed its oldest waiters for good. A line that never empties
but moves faster than `target` is not overload: nothing is shed.

For `interval` after it stops counting as overloaded, a waiter that has waited
longer than `target` since then is enough to make it so again (CoDel likewise
re-enters its dropping state at once when the queue stands again soon after it
left): shedding empties the line as surely as serving does, and an open loop of
clients that sends more than the process serves fills it again at once; waiting
for it to stay non-empty for a whole `interval` would serve that long a queue
first in, first out.

A call arriving at a full line takes the place of the oldest waiter of a lower
class; with none, it is refused. Pure: every operation takes `now`.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Generic, TypeVar

from scalepy.shedding._priority import Priority

__all__ = ("WaitLine",)

T = TypeVar("T")

_CLASSES = len(Priority) - 1  # CRITICAL never waits


class WaitLine(Generic[T]):
    """Waiting calls by class; the shedder decides when one is served.

    Args:
        max_size: The most calls waiting at once, all classes together.
        interval: Seconds the line may stay non-empty before it can count as overloaded.
        target: The wait past which a line that stayed non-empty is overloaded, and
            then the longest a call may wait before it is shed.
    """

    __slots__ = (
        "_classes",
        "_interval",
        "_last_empty",
        "_max_size",
        "_overloaded_until",
        "_target",
        "size",
        "stale_after",
    )

    def __init__(self, max_size: int, interval: float, target: float) -> None:
        self._max_size = max_size
        self._interval = interval
        self._target = target
        # (enqueued at, item), oldest on the left, by class (index: the priority's value).
        self._classes: tuple[deque[tuple[float, T]], ...] = tuple(deque() for _ in range(_CLASSES))
        self.size = 0
        """How many wait now; read it instead of `len()` on hot paths (no method call)."""
        self.stale_after = target
        """While overloaded, waiters older than this are shed; at most `target`."""
        self._last_empty = -math.inf
        self._overloaded_until = -math.inf  # a standing queue keeps LIFO on this long

    def __len__(self) -> int:
        return self.size

    def overloaded(self, now: float) -> bool:
        """Whether a standing queue stands, stood less than `interval` ago, or formed again.

        See the module: "formed again" is a wait past `target`, counted from the end
        of the last overload and within `interval` of it, however briefly the line
        emptied since.
        """
        if self.size == 0:
            return False
        until = self._overloaded_until
        if now < until:
            return True
        oldest = self.oldest()
        if now - oldest <= self._target:
            return False
        if now - self._last_empty > self._interval:
            return True
        # It stood a moment ago: a wait past target since then is enough (see the module).
        return now < until + self._interval and now - until > self._target

    def push(self, now: float, priority: Priority, item: T) -> T | None:
        """Put `item` in line, making room by evicting a lower class if full.

        Args:
            now: The current time.
            priority: The item's class; not `CRITICAL`.
            item: What waits.

        Returns:
            `None` if `item` waits and nobody was evicted; the evicted item if one
            of a lower class lost its place; `item` itself if it was refused.
        """
        evicted: T | None = None
        if self.size >= self._max_size:
            lower = next((line for line in self._classes[:priority] if line), None)
            if lower is None:
                return item
            evicted = lower.popleft()[1]
            self.size -= 1
        if self.size == 0:
            self._last_empty = now
        self._classes[priority].append((now, item))
        self.size += 1
        return evicted

    def pop(self, now: float, stale: list[T]) -> T | None:
        """Take the next item to serve, appending the waiters shed as stale to `stale`.

        Args:
            now: The current time.
            stale: Receives the items shed because they waited longer than
                `stale_after` while the line was overloaded.

        Returns:
            The item to serve, or `None` if the line is (now) empty.
        """
        overloaded = self.overloaded(now)
        if overloaded and now >= self._overloaded_until:
            self._overloaded_until = now + self._interval
        served: T | None = None
        for line in reversed(self._classes):
            if overloaded:
                while line and now - line[0][0] > self.stale_after:
                    stale.append(line.popleft()[1])
                    self.size -= 1
            if line:
                served = (line.pop() if overloaded else line.popleft())[1]
                self.size -= 1
                break
        if self.size == 0:
            self._last_empty = now
        return served

    def oldest(self) -> float:
        """When the longest waiter came; infinity if nobody waits."""
        return min((line[0][0] for line in self._classes if line), default=math.inf)

    def expire(self, now: float, max_wait: float, expired: list[T]) -> None:
        """Take out every waiter that has waited `max_wait` or longer, into `expired`."""
        for line in self._classes:
            while line and line[0][0] + max_wait <= now:  # each class is in arrival order
                expired.append(line.popleft()[1])
                self.size -= 1
        if self.size == 0:
            self._last_empty = now

    def remove(self, now: float, priority: Priority, item: T) -> bool:
        """Take `item` out of line (it timed out or was cancelled).

        Returns:
            Whether it was still in line.
        """
        line = self._classes[priority]
        for index, (_, waiting) in enumerate(line):
            if waiting is item:
                del line[index]
                self.size -= 1
                if self.size == 0:
                    self._last_empty = now
                return True
        return False
