"""Lua scripts: atomic multi-key operations run with EVALSHA, reloaded on NOSCRIPT."""

from __future__ import annotations

import asyncio
import os
import uuid

from scalepy.backends import KeySpace
from scalepy.backends.redis import RedisClient, Script
from scalepy.errors import BackendCommandError

REDIS_URL = os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# A unique comment makes a script the server has never seen, to show the reload.
TAKE = Script(
    "take",
    f"""
    -- docs example {uuid.uuid4().hex}
    -- Take up to ARGV[2] tokens from KEYS[1] (which starts at ARGV[1]); log it in KEYS[2].
    local left = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
    local taken = math.min(left, tonumber(ARGV[2]))
    redis.call('SET', KEYS[1], left - taken, 'EX', 60)
    redis.call('RPUSH', KEYS[2], taken)
    redis.call('EXPIRE', KEYS[2], 60)
    return {{taken, left - taken}}
    """,
)

FAIL = Script("fail", "return redis.error_reply('out of tokens')")


async def main() -> None:
    """Run a script twice, then a failing one, and clean up."""
    # Both keys share one hash tag, so the script also runs on a Redis Cluster.
    keys = KeySpace("scalepy:docs:scripts").keys(uuid.uuid4().hex, "tokens", "log")

    async with RedisClient.from_url(REDIS_URL) as redis:
        try:
            # First call: EVALSHA answers NOSCRIPT, the client resends the body.
            assert await redis.run_script(TAKE, keys, [5, 3]) == [3, 2]
            assert redis.statistics().script_reloads == 1
            # Now the server knows the SHA1: no reload.
            assert await redis.run_script(TAKE, keys, [5, 3]) == [2, 0]
            assert redis.statistics().script_reloads == 1
            assert await redis.execute("LRANGE", keys[1], 0, -1) == [b"3", b"2"]

            # An error raised by a script is a BackendCommandError.
            try:
                await redis.run_script(FAIL)
            except BackendCommandError as exc:
                assert "out of tokens" in exc.message
            else:
                raise AssertionError("the script's error must propagate")
        finally:
            await redis.execute("DEL", *keys)


if __name__ == "__main__":
    asyncio.run(main())
