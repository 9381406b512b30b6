"""Give a Redis Cluster slot to another node for a test, and back afterwards."""

from __future__ import annotations

import contextlib
import itertools
from typing import TYPE_CHECKING, Any

from redis.crc import key_slot

from scalepy.backends.redis import RedisClient

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ("SlotMove", "empty_slot")


class SlotMove:
    """A key whose slot holds no key, and the means to give that slot to another node.

    `CLUSTER SETSLOT ... NODE` moves no keys, hence a slot that holds none (other
    runs' keys may sit in others).
    """

    def __init__(
        self, key: str, slot: int, admins: list[RedisClient], ids: list[Any], target: int
    ) -> None:
        self.key = key
        """A key (or shard channel) in the slot."""
        self.slot = slot
        """The slot."""
        self._admins = admins
        self._ids = ids  # every primary's node id, in the order of `admins`
        self._target = target  # the index of the node `move()` gives the slot to

    async def move(self) -> None:
        """Tell every node that the slot belongs to the target node now."""
        await self.set_owner(self._target)

    async def set_owner(self, index: int) -> None:
        """Tell every node that the slot belongs to node `index` (of CLUSTER SLOTS)."""
        for admin in self._admins:
            await admin.execute("CLUSTER", "SETSLOT", self.slot, "NODE", self._ids[index])


@contextlib.asynccontextmanager
async def empty_slot(cluster: RedisClient, prefix: str) -> AsyncIterator[SlotMove]:
    """Yield a `SlotMove` for a key `prefix:{slot-N}`; the slot returns to its owner on exit.

    Args:
        cluster: A client of the cluster; its slot map is loaded on the way.
        prefix: What the key starts with (a test's `key_prefix`).
    """
    ranges: list[Any] = await cluster.execute("CLUSTER", "SLOTS")
    primaries = [primary for _, _, primary, *_ in ranges]
    admins = [RedisClient.from_url(f"redis://{p[0].decode()}:{p[1]}") for p in primaries]
    try:
        for attempt in itertools.count():
            key = f"{prefix}:{{slot-{attempt}}}"
            slot = key_slot(key.encode())
            owner = next(i for i, (start, end, *_) in enumerate(ranges) if start <= slot <= end)
            if 0 == await admins[owner].execute("CLUSTER", "COUNTKEYSINSLOT", slot):
                break
        ids = [primary[2] for primary in primaries]
        move = SlotMove(key, slot, admins, ids, (owner + 1) % len(admins))
        try:
            yield move
        finally:
            await move.set_owner(owner)
    finally:
        for admin in admins:
            await admin.aclose()
