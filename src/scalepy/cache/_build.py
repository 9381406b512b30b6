"""Assembling a cache: its store from a URL or config, and the engine around it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scalepy._validation import check_finite, check_int
from scalepy.backends._resolve import resolve_store
from scalepy.backends.guard import BackendGuard
from scalepy.cache._codec import Codec
from scalepy.cache._engine import Engine
from scalepy.cache._local import LocalCache
from scalepy.cache._memory import MemoryCacheStore
from scalepy.cache._store import CacheStore, LockingCacheStore, PubSubCacheStore
from scalepy.cache._tier import LocalTier
from scalepy.cache._writes import Writer
from scalepy.errors import ConfigurationError

if TYPE_CHECKING:
    from scalepy.backends import BackendConfig
    from scalepy.backends.redis import RedisClient
    from scalepy.cache._flight import Flight
    from scalepy.cache._telemetry import Meter
    from scalepy.clock import Clock
    from scalepy.serializers import Serializer
    from scalepy.telemetry import Instrumentation

__all__ = (
    "MAX_VALUE_BYTES",
    "build_engine",
    "build_store",
    "check_coherence",
    "local_size",
)

MAX_VALUE_BYTES = 512 * 2**20
"""The largest `max_value_bytes`: the largest string Redis accepts."""


def build_store(
    backend: str | BackendConfig | RedisClient | CacheStore,
    *,
    namespace: str,
    version: str | int,
    timeout: float,
    lock_ttl: float,
    heartbeat: float,
    owns_client: bool,
    clock: Clock,
    instrumentation: Instrumentation | None,
) -> tuple[CacheStore, bool]:
    """Return the store `backend` names (and whether the cache owns it), or `backend` itself.

    Raises:
        ConfigurationError: A bad namespace, timeout or lock TTL, or an unparsable URL.
    """
    check_finite("lock_ttl", lock_ttl)

    def redis(client: RedisClient, owns: bool) -> CacheStore:
        from scalepy.cache._redis import RedisCacheStore  # the redis extra, only when asked for

        return RedisCacheStore(
            client,
            namespace=namespace,
            version=version,
            lock_ttl=lock_ttl,
            heartbeat=heartbeat,
            owns_client=owns,
            instrumentation=instrumentation,
        )

    return resolve_store(
        backend,
        memory=lambda: MemoryCacheStore(clock=clock),
        redis=redis,
        protocol=CacheStore,
        namespace=namespace,
        timeout=timeout,
        owns_client=owns_client,
        instrumentation=instrumentation,
    )


def local_size(local_max_size: int | None, store: CacheStore, *, owned: bool) -> int:
    """Return how many values the L1 holds: `local_max_size`, or its default when `None`.

    The default L1 of a `memory://` cache holds as many values as its store: no
    other process or cache reaches that store, so the L1 is coherent with it by
    construction, and hits are served decoded instead of decoded again each time.
    A store passed as an object may be shared with other caches, which could not
    tell this L1 what they change: its L1 is off unless asked for, as with Redis.
    """
    if local_max_size is not None:
        return local_max_size
    return store.max_entries if owned and isinstance(store, MemoryCacheStore) else 0


def check_coherence(store: CacheStore, local_ttl: float) -> None:
    """Refuse an L1 in front of `store` when nothing would tell it what other processes change.

    The memory store lives in this process, so its L1 sees every change. Any other
    store may be shared, and without pub/sub (`PubSubCacheStore`) its L1 would
    serve values other processes changed or invalidated, until `local_ttl` ran out,
    with nothing saying so: the caller has to accept that (`allow_stale_local`).

    Raises:
        ConfigurationError: `store` is neither a `MemoryCacheStore` nor a `PubSubCacheStore`.
    """
    if not isinstance(store, MemoryCacheStore):
        raise ConfigurationError(
            f"{type(store).__name__} has no invalidation channel (it is not a "
            f"PubSubCacheStore): an L1 in front of it would serve values other processes "
            f"changed for up to local_ttl={local_ttl} s; pass local_max_size=0, or "
            f"allow_stale_local=True to accept that"
        )


def build_engine(
    store: CacheStore,
    *,
    serializer: Serializer,
    namespace: str,
    clock: Clock,
    meter: Meter,
    local_max_size: int,
    local_max_bytes: int,
    local_ttl: float,
    allow_stale_local: bool,
    lock_wait: float,
    name: str,
    max_value_bytes: int,
) -> Engine:
    """Wire the guard, the L1 tier, the writer and the engine of one cache around `store`.

    Raises:
        ConfigurationError: Negative L1 bounds, a non-positive `local_ttl`, a
            `max_value_bytes` that is not an int from 1 to 512 MiB, or an L1 that
            could not be kept coherent (see `check_coherence`).
    """
    check_int("max_value_bytes", max_value_bytes, maximum=MAX_VALUE_BYTES)
    if local_max_size < 0 or local_max_bytes < 1:
        raise ConfigurationError(
            f"local_max_size must be >= 0 and local_max_bytes >= 1, "
            f"got {local_max_size} and {local_max_bytes}"
        )
    check_finite("local_ttl", local_ttl)
    pubsub = store if isinstance(store, PubSubCacheStore) else None
    if local_max_size and pubsub is None and not allow_stale_local:
        check_coherence(store, local_ttl)
    guard = BackendGuard(clock=clock, name=name)
    flights: dict[str, Flight] = {}
    tier = LocalTier(
        LocalCache(local_max_size, local_max_bytes) if local_max_size else None,
        pubsub,
        ttl=local_ttl,
        clock=clock,
        meter=meter,
        flights=flights,
    )
    codec = Codec(serializer, namespace)
    writer = Writer(
        store, codec=codec, guard=guard, meter=meter, tier=tier, max_value_bytes=max_value_bytes
    )
    return Engine(
        store,
        store if isinstance(store, LockingCacheStore) else None,
        writer=writer,
        tier=tier,
        flights=flights,
        codec=codec,
        clock=clock,
        guard=guard,
        meter=meter,
        lock_wait=lock_wait,
    )
