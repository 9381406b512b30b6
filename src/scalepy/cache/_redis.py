"""`RedisCacheStore`: cache entries shared by every replica, on Redis or Redis Cluster."""

from __future__ import annotations

import asyncio
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from scalepy.backends.keys import KeySpace
from scalepy.backends.redis import ScriptRegistry
from scalepy.cache._bus import InvalidationBus
from scalepy.cache._lock import LoadLock
from scalepy.errors import BackendUnavailable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from redis.asyncio import Redis
    from redis.asyncio.cluster import ClusterNode

    from scalepy.backends.redis import RedisClient, Script
    from scalepy.cache._bus import Invalidation
    from scalepy.telemetry import Instrumentation

__all__ = ("RedisCacheStore", "entry_of")

T = TypeVar("T")

_GLOB = str.maketrans({char: "\\" + char for char in "*?[]\\"})
_CLEAR_BATCH = 500


@cache
def _scripts() -> ScriptRegistry:
    """`lua/*.lua` of this package, read on first use."""
    return ScriptRegistry("scalepy.cache")


def _read_or_lock() -> Script:
    return _scripts()["read_or_lock"]


def _store_release() -> Script:
    return _scripts()["store_release"]


def _invalidate_tag() -> Script:
    return _scripts()["invalidate_tag"]


class RedisCacheStore:
    """Cache entries in Redis or Redis Cluster, each read one round trip.

    Layout under `scalepy:cache:<namespace>:v<version>` (the prefix):

    - an entry: `prefix:{<key>}`, its hard TTL the key's own expiry;
    - its load lock: `prefix:{<key>}:lock` (same hash tag, same cluster slot);
    - a tag's version: `prefix:tag:{<tag>}`, a counter bumped by each invalidation;
    - the invalidation channel: `prefix:{bus}`.

    A read is `PTTL` and `GET`, back to back in one round trip (`get`), or, when
    the reader wants the load lock on a miss, one script doing both and taking
    the lock (`get_or_lock`); a miss's write is one script storing the entry and
    then releasing the lock. A tag's versions are plain GETs issued in the same
    event-loop tick, so the client's automatic pipelining sends them with the read
    (on a cluster each tag lives in its own slot, so no script spans them).

    Args:
        client: The Redis connection.
        namespace: Separates caches sharing one Redis; no braces.
        version: Part of the prefix: a new version starts from an empty cache.
        lock_ttl: Seconds after which a load lock frees itself.
        heartbeat: Seconds between the invalidation channel's heartbeats.
        owns_client: Close `client` in `aclose()`.
        instrumentation: Where the invalidation channel's metrics go.

    Raises:
        ConfigurationError: `namespace` contains a brace, or `lock_ttl` is not > 0.
    """

    __slots__ = (
        "_client",
        "_heartbeat",
        "_instrumentation",
        "_keys",
        "_lock",
        "_owns_client",
        "_tags",
    )

    def __init__(
        self,
        client: RedisClient,
        *,
        namespace: str = "default",
        version: str | int = 1,
        lock_ttl: float = 5.0,
        heartbeat: float = 0.5,
        owns_client: bool = False,
        instrumentation: Instrumentation | None = None,
    ) -> None:
        self._client = client
        self._keys = KeySpace(f"scalepy:cache:{namespace}:v{version}")
        self._tags = self._keys.child("tag")
        self._lock = LoadLock(client, ttl=lock_ttl)
        self._heartbeat = heartbeat
        self._owns_client = owns_client
        self._instrumentation = instrumentation

    @property
    def client(self) -> RedisClient:
        """The Redis connection."""
        return self._client

    def key(self, key: str) -> str:
        """Return the Redis key of entry `key`."""
        return self._keys.key(key)

    def tag_key(self, tag: str) -> str:
        """Return the Redis key of `tag`'s version counter."""
        return self._tags.key(tag)

    async def get(self, key: str) -> tuple[bytes, float] | None:
        """Return `key`'s bytes and the seconds until Redis expires it, or `None`.

        `PTTL` then `GET`, back to back in one round trip: no script, so a hit costs
        the server what a plain GET costs, plus a PTTL (see `entry_of`).

        Raises:
            BackendError: Redis failed or did not answer in time.
        """
        entry = self._keys.key(key)
        left, data = await self._client.execute_many(("PTTL", entry), ("GET", entry))
        return entry_of(left, data)

    async def get_or_lock(self, key: str) -> tuple[bytes, float] | str | None:
        """Return `key`'s bytes and seconds left; on a miss, take its load lock in the same step.

        One script, one round trip: an uncontended miss costs no more than `get`.

        Returns:
            (bytes, seconds left) on a hit; on a miss the lock's token when this
            call took it, `None` when another process holds it.

        Raises:
            BackendError: Redis failed or did not answer in time (whether the lock
                was taken is then unknown; it frees itself after `lock_ttl`).
        """
        token, ttl_ms = self._lock.claim()
        entry = self._keys.key(key)
        reply: list[bytes | int] | int = await self._client.run_script(
            _read_or_lock(), (entry, f"{entry}:lock"), (token, ttl_ms)
        )
        if isinstance(reply, int):
            return token if reply else None
        data, left = reply
        assert isinstance(data, bytes)
        return data, int(left) / 1000

    async def set(self, key: str, data: bytes, ttl: float) -> None:
        """Store `data` under `key` for `ttl` seconds (whole milliseconds, at least 1).

        Raises:
            BackendError: Redis failed or did not answer in time.
        """
        await self._client.execute("SET", self._keys.key(key), data, "PX", _ms(ttl))

    async def set_and_release(self, key: str, data: bytes, ttl: float, token: str) -> None:
        """Store `data` under `key` for `ttl` seconds, then release its lock if `token` holds it.

        One script, so a miss's write and unlock are one command, SET first.

        Raises:
            BackendError: Redis failed or did not answer in time.
        """
        entry = self._keys.key(key)
        await self._client.run_script(
            _store_release(), (entry, f"{entry}:lock"), (data, _ms(ttl), token)
        )

    async def delete(self, keys: Sequence[str]) -> None:
        """Remove these entries (one DEL each, pipelined: they may live on several nodes).

        Raises:
            BackendError: Redis failed or did not answer in time.
        """
        await _together([self._client.execute("DEL", self._keys.key(key)) for key in keys])

    async def tag_versions(self, tags: Sequence[str]) -> tuple[int, ...]:
        """Return each tag's current version, 0 when it has none.

        Raises:
            BackendError: Redis failed or did not answer in time.
        """
        replies = await _together([self._client.execute("GET", self._tags.key(t)) for t in tags])
        return tuple(0 if reply is None else int(reply) for reply in replies)

    async def invalidate_tags(self, tags: Sequence[str], keep_for: float) -> None:
        """Bump each tag's version, kept at least `keep_for` seconds.

        Raises:
            BackendError: Redis failed or did not answer in time.
        """
        script, keep_ms = _invalidate_tag(), _ms(keep_for)
        await _together(
            [self._client.run_script(script, (self._tags.key(t),), (keep_ms,)) for t in tags]
        )

    async def clear(self) -> None:
        """Delete every key under this store's prefix (SCAN on every primary, then UNLINK).

        Takes time proportional to the keys of the server; meant for maintenance,
        not for requests. A new `version` empties a cache in O(1).

        Raises:
            BackendError: Redis failed, or a step did not answer within the timeout.
        """
        pattern = self._keys.prefix.translate(_GLOB) + ":*"
        redis = self._client.redis
        try:
            if isinstance(redis, RedisCluster):
                async with asyncio.timeout(self._client.config.timeout):
                    await redis.initialize()
                for node in redis.get_primaries():
                    await self._unlink_matches(redis, pattern, node)
            else:
                await self._unlink_matches(redis, pattern, None)
        except (RedisError, OSError, TimeoutError) as exc:
            raise BackendUnavailable(
                f"clear failed: {str(exc) or type(exc).__name__}", backend=str(self._client.config)
            ) from exc

    async def _unlink_matches(
        self, redis: Redis | RedisCluster, pattern: str, node: ClusterNode | None
    ) -> None:
        cursor = 0
        while True:
            async with asyncio.timeout(
                self._client.config.timeout
            ):  # each page, not the whole scan
                if node is None:
                    cursor, keys = await redis.scan(cursor, match=pattern, count=_CLEAR_BATCH)
                else:  # a cluster answers with a cursor per node
                    reply: Any = await redis.scan(
                        cursor, match=pattern, count=_CLEAR_BATCH, target_nodes=node
                    )
                    cursor, keys = reply[0][node.name], reply[1]
            if keys:
                await _together([self._client.execute("UNLINK", key) for key in keys])
            if not cursor:
                return

    async def acquire_lock(self, key: str) -> str | None:
        """Take `key`'s load lock; a token when taken, `None` when another process holds it.

        Raises:
            BackendError: Redis failed or did not answer in time.
        """
        return await self._lock.acquire(self._keys.key(key, "lock"))

    async def release_lock(self, key: str, token: str) -> None:
        """Release `key`'s load lock if `token` still holds it.

        Raises:
            BackendError: Redis failed or did not answer in time.
        """
        await self._lock.release(self._keys.key(key, "lock"), token)

    def invalidation_channel(
        self, on_invalidation: Callable[[Invalidation], None], on_reset: Callable[[], None]
    ) -> InvalidationBus:
        """Return an `InvalidationBus` on `prefix:{bus}` (sharded on a cluster)."""
        return InvalidationBus(
            self._client,
            self._keys.key("bus"),
            on_invalidation=on_invalidation,
            on_reset=on_reset,
            heartbeat=self._heartbeat,
            instrumentation=self._instrumentation,
        )

    async def ping(self) -> None:
        """Ask Redis for an answer (connecting, logging in and selecting the db first).

        Raises:
            BackendError: Redis cannot be reached, refused the login or the db.
        """
        await self._client.ping()

    async def aclose(self) -> None:
        """Close the client if this store owns it."""
        if self._owns_client:
            await self._client.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._keys.prefix!r} client={self._client!r}>"


def entry_of(left: int, data: bytes | None) -> tuple[bytes, float] | None:
    """Judge the replies of `PTTL key` and then `GET key`: (bytes, seconds left), or a miss.

    A key without an expiry (`left` -1) is not one of ours: a miss, as an absent
    one (-2). Another client's command may run between the two (rarely: Redis runs
    the commands of one read back to back), and every outcome stays safe:

    - the entry expired or was deleted in between: `data` is `None`, a miss;
    - it was created in between: `left` is -2, a miss;
    - it was rewritten in between: the newer bytes are judged by the older entry's
      time left, the time a reader one step earlier would have seen. A rewrite
      follows a load or a refresh, which comes when the older entry ran short, so
      the newer value is mostly judged staler than it is (refreshed early), and it
      is the newest value either way: never is an older value given the newer
      entry's lifetime, as `GET` before `PTTL` could.
    """
    if data is None or left < 0:
        return None
    return data, left / 1000


def _ms(seconds: float) -> int:
    return max(round(seconds * 1000), 1)


async def _together(calls: list[Awaitable[T]]) -> list[T]:
    # One call needs no task; several run as tasks so they share one pipeline.
    if len(calls) == 1:
        return [await calls[0]]
    return list(await asyncio.gather(*calls))
