"""`LoadLock`: one holder at a time, expiry, and tokens that cannot free a successor's lock."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalepy.backends.keys import KeySpace
from scalepy.backends.redis import RedisClient

# The internal load lock, driven directly to pin its token and expiry rules.
from scalepy.cache._lock import LoadLock
from scalepy.errors import BackendError, ConfigurationError

if TYPE_CHECKING:
    from tests.support.redis_server import RedisServer


@pytest.fixture
def key(key_prefix: str) -> str:
    """A lock key no other test uses."""
    return KeySpace(key_prefix).key("entry", "lock")


async def test_one_holder_at_a_time(redis: RedisClient, key: str) -> None:
    """A taken lock refuses others until released; the token is stored with the TTL."""
    lock = LoadLock(redis, ttl=5.0)
    token = await lock.acquire(key)
    assert token is not None
    assert await lock.acquire(key) is None
    assert token.encode() == await redis.execute("GET", key)
    assert 0 < await redis.execute("PTTL", key) <= 5000
    assert await lock.release(key, token)
    assert not await lock.release(key, token)  # already gone
    assert await lock.acquire(key) is not None


async def test_expiry_lets_the_next_one_in_and_the_old_token_cannot_free_it(
    redis: RedisClient, key: str
) -> None:
    """After the TTL the next acquirer wins; the expired holder's release leaves it alone."""
    lock = LoadLock(redis, ttl=0.05)
    first = await lock.acquire(key)
    assert first is not None
    deadline = time.monotonic() + 5.0
    while (second := await lock.acquire(key)) is None:  # polls Redis until the TTL runs out
        assert time.monotonic() < deadline
    assert first != second
    assert not await lock.release(key, first)
    assert second.encode() == await redis.execute("GET", key)
    assert await lock.release(key, second)


async def test_many_concurrent_acquirers_one_winner(redis: RedisClient, key_prefix: str) -> None:
    """200 acquirers over 4 connections race for each of 10 keys: exactly one wins each."""
    space = KeySpace(key_prefix)
    clients = [redis, *(RedisClient(redis.config) for _ in range(3))]
    try:
        locks = [LoadLock(client, ttl=10.0) for client in clients]
        for index in range(10):
            lock_key = space.key(f"entry-{index}", "lock")
            tokens = await asyncio.gather(*(locks[i % 4].acquire(lock_key) for i in range(200)))
            winners = [token for token in tokens if token is not None]
            assert 1 == len(winners)
            assert winners[0].encode() == await redis.execute("GET", lock_key)
    finally:
        for client in clients[1:]:
            await client.aclose()


# A random history of three actors against one lock, checked against a model where
# "expire" makes the lock vanish as its TTL would (by DEL, to keep the test exact).
Step = tuple[str, int]
steps = st.lists(
    st.tuples(st.sampled_from(["acquire", "release", "expire"]), st.integers(0, 2)),
    max_size=30,
)


async def check_history(url: str, history: list[Step]) -> None:
    """Run `history` on Redis and compare each result with the model's."""
    async with RedisClient.from_url(url) as client:
        lock = LoadLock(client, ttl=30.0)
        lock_key = KeySpace(f"scalepy-test:{uuid.uuid4().hex}").key("entry", "lock")
        holder: str | None = None  # the token Redis should hold
        tokens: dict[int, str] = {}  # each actor's latest token, possibly stale
        try:
            for action, actor in history:
                if action == "acquire":
                    token = await lock.acquire(lock_key)
                    assert (holder is None) == (token is not None)
                    if token is not None:
                        holder = tokens[actor] = token
                elif action == "release" and actor in tokens:
                    released = await lock.release(lock_key, tokens[actor])
                    assert (tokens[actor] == holder) == released
                    holder = None if released else holder
                elif action == "expire":
                    await client.execute("DEL", lock_key)
                    holder = None
                stored = await client.execute("GET", lock_key)
                assert (None if holder is None else holder.encode()) == stored
        finally:
            await client.execute("DEL", lock_key)


@settings(max_examples=40, deadline=None)
@given(history=steps)
def test_histories_agree_with_the_model(redis_url: str, history: list[Step]) -> None:
    """Any interleaving of acquire, release (fresh or stale token) and expiry matches the model."""
    asyncio.run(check_history(redis_url, history))


@settings(max_examples=15, deadline=None)
@given(history=steps)
def test_histories_agree_with_the_model_on_the_cluster(
    cluster_url: str, history: list[Step]
) -> None:
    """The same, on Redis Cluster."""
    asyncio.run(check_history(cluster_url, history))


async def test_redis_down_raises_backend_errors(redis_server: RedisServer, key: str) -> None:
    """With Redis stopped both operations raise BackendError (the caller decides)."""
    async with RedisClient.from_url(f"{redis_server.url}?timeout=0.3") as client:
        lock = LoadLock(client, ttl=1.0)
        token = await lock.acquire(key)
        assert token is not None
        redis_server.stop()
        with pytest.raises(BackendError):
            await lock.acquire(key)
        with pytest.raises(BackendError):
            await lock.release(key, token)


async def test_the_script_is_resent_when_the_server_lost_it(
    redis_server: RedisServer, key: str
) -> None:
    """After SCRIPT FLUSH (as after a restart), release resends the script transparently."""
    async with RedisClient.from_url(redis_server.url) as client:
        lock = LoadLock(client, ttl=5.0)
        for _ in range(2):
            token = await lock.acquire(key)
            assert token is not None
            before = client.statistics().script_reloads
            assert await lock.release(key, token)
            assert before + 1 == client.statistics().script_reloads
            await client.execute("SCRIPT", "FLUSH")


def test_bad_arguments_are_rejected(redis_url: str) -> None:
    """A TTL that is not a finite number > 0, or an empty key, is a ConfigurationError."""
    client = RedisClient.from_url(redis_url)
    for ttl in (0, -1.0, float("nan")):
        with pytest.raises(ConfigurationError, match="ttl must be a finite number > 0"):
            LoadLock(client, ttl=ttl)
    lock = LoadLock(client, ttl=1.0)
    assert "ttl=1.0" in repr(lock)
    assert 1.0 == lock.ttl
    with pytest.raises(ConfigurationError, match="non-empty"):
        asyncio.run(lock.acquire(""))
    with pytest.raises(ConfigurationError, match="non-empty"):
        asyncio.run(lock.release("", "token"))
