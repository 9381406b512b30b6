"""RedisClient on a Redis Cluster: the same calls, routed by slot."""

from __future__ import annotations

import asyncio
import os
import uuid

from scalepy.backends import KeySpace
from scalepy.backends.redis import RedisClient, Script
from scalepy.errors import ConfigurationError

CLUSTER_URL = os.environ.get("SCALEPY_TEST_CLUSTER_URL", "redis+cluster://127.0.0.1:7000")

SWAP = Script(
    "swap",
    """
    local a = redis.call('GET', KEYS[1])
    redis.call('SET', KEYS[1], redis.call('GET', KEYS[2]))
    redis.call('SET', KEYS[2], a)
    return redis.status_reply('OK')
    """,
)


async def main() -> None:
    """Spread keys over the cluster, run a two-key script, and show the slot check."""
    space = KeySpace("scalepy:docs:cluster")
    run = uuid.uuid4().hex
    users = [space.key(f"{run}:{i}", "name") for i in range(20)]  # 20 tags, many slots
    left, right = space.keys(run, "left", "right")  # one tag, one slot

    async with RedisClient.from_url(CLUSTER_URL) as redis:
        assert redis.is_cluster
        try:
            # One tick's commands become one pipeline per node that owns a slot.
            await asyncio.gather(*(redis.execute("SET", key, key, "EX", 60) for key in users))
            assert await asyncio.gather(*(redis.execute("GET", key) for key in users)) == [
                key.encode() for key in users
            ]

            # A script's keys must share a hash tag: KeySpace.keys() guarantees it.
            await asyncio.gather(redis.execute("SET", left, "L"), redis.execute("SET", right, "R"))
            assert await redis.run_script(SWAP, [left, right]) == b"OK"
            assert await redis.execute("MGET", left, right) == [b"R", b"L"]

            # Keys in different slots are refused before anything is sent.
            try:
                await redis.run_script(SWAP, [users[0], users[1]])
            except ConfigurationError as exc:
                assert "same hash tag" in str(exc)
            else:
                raise AssertionError("keys in two slots must be refused")
        finally:
            await asyncio.gather(*(redis.execute("DEL", key) for key in [*users, left, right]))


if __name__ == "__main__":
    asyncio.run(main())
