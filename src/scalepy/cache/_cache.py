"""`Cache`: read-through caching in one process or shared by every replica through Redis."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from scalepy._lifecycle import LIFECYCLE_SLOTS, AsyncResource, deprecated
from scalepy.backends._resolve import DEFAULT_BACKEND
from scalepy.cache._build import build_engine, build_store, local_size
from scalepy.cache._decorator import CachedFunction, CachedManyFunction, check_tags
from scalepy.cache._engine import MISSING
from scalepy.cache._policy import Policies, Policy
from scalepy.cache._telemetry import CacheStatistics, Meter
from scalepy.clock import MonotonicClock
from scalepy.errors import BackendError, ConfigurationError
from scalepy.serializers import JsonSerializer
from scalepy.telemetry import get_default

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
    from typing import Concatenate

    from scalepy.backends import BackendConfig
    from scalepy.backends.redis import RedisClient
    from scalepy.cache._store import CacheStore
    from scalepy.clock import Clock
    from scalepy.serializers import Serializer
    from scalepy.telemetry import Instrumentation

__all__ = ("Cache",)

P = ParamSpec("P")
R = TypeVar("R")
K = TypeVar("K")
V = TypeVar("V")

_MANUAL_GET = Policy(ttl=1.0, xfetch_beta=0.0)  # fresh values only, no early refresh


class Cache(AsyncResource):
    """A read-through cache: a decorator, a manual API, an optional in-process L1.

    Args:
        backend: `"memory://"` (one process), a Redis URL or config (every replica
            shares the entries), a `RedisClient` shared with other primitives (the
            cache runs on a `with_timeout(timeout)` view of it), or a `CacheStore`.
        namespace: Separates this cache's keys from other caches on one Redis; no braces.
        version: Part of every key: bump it to start from an empty cache (O(1)).
        ttl: Default seconds a value stays fresh, when a call does not say.
        max_ttl: Longest lifetime (ttl plus stale windows) any entry may have; tag
            versions are kept twice as long, so tags invalidate reliably.
        local_max_size: Values held in the in-process L1; 0 turns the L1 off. By
            default as many as the store holds for `memory://` (hits are then
            served decoded, shared by their callers), 0 otherwise.
        local_max_bytes: Estimated memory, in bytes, the L1's values (decoded, or
            serialized until their first L1 hit, with their keys and bookkeeping) may take.
        local_ttl: Longest time a value stays in the L1.
        allow_stale_local: Accept an L1 in front of a store passed as an object that
            has no invalidation channel (not a `PubSubCacheStore`): values other
            processes change are then served for up to `local_ttl`. Without it such
            an L1 raises `ConfigurationError`.
        max_value_bytes: Largest value, serialized, that is stored; a larger one is
            returned to its caller but not cached (counted, logged once per function).
        serializer: How values become bytes; `JsonSerializer()` by default.
        timeout: Seconds a Redis call may take before the loader answers instead.
        lock_ttl: Seconds a cross-process load lock lasts, and the longest other
            processes wait for its holder's value before loading themselves.
        heartbeat: Seconds between the invalidation channel's heartbeats; the L1
            of another process is coherent within `2 * heartbeat` of an invalidation.
        jitter: Fresh lifetimes are shortened by a random fraction up to this.
        xfetch_beta: Eagerness of probabilistic early refresh; 0 turns it off.
        clock: Time source of the memory store, the L1 and lock waits.
        instrumentation: Where metrics go; the process default if `None`.
        owns_client: Close a `RedisClient` given as `backend` in `aclose()`; a
            client built from a URL is always closed, a given one by default not.

    Raises:
        ConfigurationError: An option out of range, a namespace that is empty or
            holds a brace, a URL that cannot be parsed, or an L1 in front of a store
            without an invalidation channel (see `allow_stale_local`).
    """

    __slots__ = (
        *LIFECYCLE_SLOTS,
        "_clock",
        "_engine",
        "_guard",
        "_meter",
        "_owns_store",
        "_policies",
        "_store",
        "namespace",
    )

    def __init__(
        self,
        backend: str | BackendConfig | RedisClient | CacheStore = DEFAULT_BACKEND,
        *,
        namespace: str = "default",
        version: str | int = 1,
        ttl: float = 300.0,
        max_ttl: float = 86_400.0,
        local_max_size: int | None = None,
        local_max_bytes: int = 64 * 2**20,
        local_ttl: float = 10.0,
        allow_stale_local: bool = False,
        max_value_bytes: int = 2**20,
        serializer: Serializer | None = None,
        timeout: float = 0.1,
        lock_ttl: float = 5.0,
        heartbeat: float = 0.5,
        jitter: float = 0.1,
        xfetch_beta: float = 1.0,
        clock: Clock | None = None,
        instrumentation: Instrumentation | None = None,
        owns_client: bool = False,
    ) -> None:
        self.namespace = namespace
        self._clock = clock or MonotonicClock()
        self._policies = Policies(ttl=ttl, max_ttl=max_ttl, jitter=jitter, xfetch_beta=xfetch_beta)
        self._meter = Meter(namespace, instrumentation or get_default())
        self._store, self._owns_store = build_store(
            backend,
            namespace=namespace,
            version=version,
            timeout=timeout,
            lock_ttl=lock_ttl,
            heartbeat=heartbeat,
            owns_client=owns_client,
            clock=self._clock,
            instrumentation=instrumentation,
        )
        self._engine = build_engine(
            self._store,
            serializer=serializer or JsonSerializer(),
            namespace=namespace,
            clock=self._clock,
            meter=self._meter,
            local_max_size=local_size(local_max_size, self._store, owned=self._owns_store),
            local_max_bytes=local_max_bytes,
            local_ttl=local_ttl,
            allow_stale_local=allow_stale_local,
            lock_wait=lock_ttl,
            name=f"cache {namespace!r}",
            max_value_bytes=max_value_bytes,
        )
        self._guard = self._engine.guard

    @property
    def store(self) -> CacheStore:
        """The backend store."""
        return self._store

    @property
    def staleness_bound(self) -> float | None:
        """Worst-case seconds another process's L1 may serve a value after its invalidation.

        `None` when no process shares this store (memory) or this cache has no L1.
        """
        channel = self._engine.tier.channel
        return None if channel is None else channel.staleness_bound

    # -- decorators -----------------------------------------------------------

    @overload
    def cached(self, function: Callable[P, Awaitable[R]], /) -> CachedFunction[P, R]: ...

    @overload
    def cached(
        self,
        function: None = None,
        /,
        *,
        ttl: float | None = None,
        key: str | Callable[..., str] | None = None,
        tags: Sequence[str] | Callable[..., Iterable[str]] = (),
        stale_ttl: float = 0.0,
        stale_if_error: float = 0.0,
        negative_ttl: float | None = None,
        condition: Callable[[Any], bool] | None = None,
        version: str | int | None = None,
    ) -> Callable[[Callable[P, Awaitable[R]]], CachedFunction[P, R]]: ...

    def cached(
        self,
        function: Callable[P, Awaitable[R]] | None = None,
        /,
        *,
        ttl: float | None = None,
        key: str | Callable[..., str] | None = None,
        tags: Sequence[str] | Callable[..., Iterable[str]] = (),
        stale_ttl: float = 0.0,
        stale_if_error: float = 0.0,
        negative_ttl: float | None = None,
        condition: Callable[[Any], bool] | None = None,
        version: str | int | None = None,
    ) -> CachedFunction[P, R] | Callable[[Callable[P, Awaitable[R]]], CachedFunction[P, R]]:
        """Cache an async function's results, keyed by its arguments.

        Usable bare (`@cache.cached`) or with options (`@cache.cached(ttl=60)`).

        Args:
            function: The function, when used bare.
            ttl: Seconds a result stays fresh; the cache's `ttl` if `None`.
            key: A template such as `"user:{user_id}"` formatted with the bound
                arguments, or a callable taking the call's arguments; by default
                the function's qualified name plus its canonical arguments.
            tags: Tags of each result (templates like `"todo:{todo_id}"`, or a
                callable taking the call's arguments); see `invalidate_tags`.
            stale_ttl: Seconds past freshness the old result is served while one
                caller refreshes it in the background.
            stale_if_error: Seconds past freshness the old result is served when
                refreshing raises.
            negative_ttl: Seconds a `None` result stays fresh (`None`: like `ttl`;
                0: `None` is never cached).
            condition: Cache a result only if `condition(result)` is true.
            version: Part of this function's keys; bump it when its results change shape.

        Returns:
            A `CachedFunction` with the wrapped signature, plus `invalidate` and `key`.

        Raises:
            ConfigurationError: A sync function, an option out of range, or a template
                naming something that is not a parameter.
        """
        policy = self._policies.get(
            ttl, stale_ttl=stale_ttl, stale_if_error=stale_if_error, negative_ttl=negative_ttl
        )

        def decorate(function: Callable[P, Awaitable[R]]) -> CachedFunction[P, R]:
            return CachedFunction(
                function,
                self,
                self._engine,
                policy,
                key=key,
                tags=tags,
                condition=condition,
                version=version,
            )

        return decorate if function is None else decorate(function)

    def cached_many(
        self,
        *,
        ttl: float | None = None,
        key: Callable[[Any], str] | None = None,
        tags: Callable[[Any], Iterable[str]] | None = None,
        stale_ttl: float = 0.0,
        stale_if_error: float = 0.0,
        negative_ttl: float | None = None,
        version: str | int | None = None,
    ) -> Callable[
        [Callable[Concatenate[list[K], P], Awaitable[Mapping[K, V]]]], CachedManyFunction[K, V, P]
    ]:
        """Cache a bulk loader per item: each call loads only the items not cached.

        The decorated function takes a list of ids first (then any other
        arguments, which are part of every item's key) and returns a mapping from
        id to value. Calling it with any ids returns a dict for all of them: ids
        the function left out map to `None`.

        Args:
            ttl: Seconds an item stays fresh; the cache's `ttl` if `None`.
            key: The key of one id; by default the function's name, the id and the
                other arguments, canonically encoded.
            tags: The tags of one id's value.
            stale_ttl: Seconds past freshness an item's old value is served while it
                is refreshed in the background (one load per item).
            stale_if_error: Seconds past freshness old values are served when the
                load raises (if every missing item has one).
            negative_ttl: Seconds a `None` (or left-out) item stays fresh (`None`:
                like `ttl`; 0: never cached).
            version: Part of this function's keys.

        Raises:
            ConfigurationError: A sync function or an option out of range.
        """
        policy = self._policies.get(
            ttl, stale_ttl=stale_ttl, stale_if_error=stale_if_error, negative_ttl=negative_ttl
        )

        def decorate(
            function: Callable[Concatenate[list[K], P], Awaitable[Mapping[K, V]]],
        ) -> CachedManyFunction[K, V, P]:
            return CachedManyFunction(
                function, self, self._engine, policy, key=key, tags=tags, version=version
            )

        return decorate

    # -- manual API -----------------------------------------------------------

    async def get(self, key: str, default: Any = None) -> Any:
        """Return `key`'s fresh value, or `default` (a miss, a stale value, a backend failure).

        Args:
            key: The key, as given to `set` (or a decorated function's `key()`).
            default: Returned when there is no fresh value; pass a sentinel of your
                own to tell a cached `None` from a miss.
        """
        _check_key(key)
        value = await self._engine.lookup(key, _MANUAL_GET)
        return default if value is MISSING else value

    async def get_or_load(
        self,
        key: str,
        loader: Callable[[], Awaitable[Any]],
        *,
        ttl: float | None = None,
        tags: Iterable[str] = (),
        stale_ttl: float = 0.0,
        stale_if_error: float = 0.0,
        negative_ttl: float | None = None,
        condition: Callable[[Any], bool] | None = None,
    ) -> Any:
        """Return `key`'s value, calling `loader()` (once across callers) when not cached.

        The options mean what they mean for `cached`.

        Raises:
            ConfigurationError: An empty key, a bad tag or an option out of range.
            SerializationError: The loaded value cannot be serialized.
            Exception: Whatever `loader` raises (unless a stale value can be served).
        """
        _check_key(key)
        policy = self._policies.get(
            ttl, stale_ttl=stale_ttl, stale_if_error=stale_if_error, negative_ttl=negative_ttl
        )
        return await self._engine.fetch(key, loader, policy, check_tags(tags), condition)

    async def set(
        self,
        key: str,
        value: Any,
        *,
        ttl: float | None = None,
        tags: Iterable[str] = (),
        stale_ttl: float = 0.0,
        stale_if_error: float = 0.0,
    ) -> None:
        """Store `value` under `key` (exactly `ttl`, no jitter), here and for every process.

        Raises:
            ConfigurationError: An empty key, a bad tag or an option out of range.
            SerializationError: The value cannot be serialized, or is larger than
                `max_value_bytes` serialized (nothing is stored).
            BackendError: The backend failed; the old value may still be served.
        """
        _check_key(key)
        tag_names = check_tags(tags)
        policy = self._policies.get(
            ttl, stale_ttl=stale_ttl, stale_if_error=stale_if_error, jitter=0.0
        )
        writer, tier = self._engine.writer, self._engine.tier
        tier.invalidate([key])  # a load of the key still storing its value must not win
        with self._backend_call("write"):
            versions = await self._store.tag_versions(tag_names) if tag_names else ()
            entry = writer.encode(key, value, policy, tag_names, versions, 0.0, strict=True)
            assert entry is not None  # no jitter, a positive ttl: always cached
            await self._store.set(key, entry.data, entry.ttl)
        tier.invalidate([key])
        writer.keep(key, entry, 0.0, tag_names, policy, tier.generation)
        await tier.publish(keys=[key])

    async def delete(self, *keys: str) -> None:
        """Remove entries, here and in every process's L1.

        Raises:
            ConfigurationError: An empty key.
            BackendError: The backend failed; the entries may still be served.
        """
        for key in keys:
            _check_key(key)
        if not keys:
            return
        self._engine.tier.invalidate(keys)  # loads of these keys still storing must not win
        with self._backend_call("delete"):
            await self._store.delete(keys)
        self._engine.tier.invalidate(keys)  # and what was read meanwhile is dropped
        self._meter.invalidated("key", "local", len(keys))
        await self._engine.tier.publish(keys=keys)

    async def invalidate_tags(self, *tags: str) -> None:
        """Invalidate every entry carrying one of `tags`, in O(1) per tag, in every process.

        Raises:
            ConfigurationError: A bad tag.
            BackendError: The backend failed; tagged entries may still be served.
        """
        tag_names = check_tags(tags)
        if not tag_names:
            return
        with self._backend_call("invalidate"):
            await self._store.invalidate_tags(tag_names, 2 * self._policies.max_ttl)
        self._engine.tier.invalidate(tags=tag_names)
        self._meter.invalidated("tag", "local", len(tag_names))
        await self._engine.tier.publish(tags=tag_names)

    async def clear(self) -> None:
        """Remove every entry of this namespace and version, in every process.

        Raises:
            BackendError: The backend failed.
        """
        self._engine.tier.invalidate(clear=True)
        with self._backend_call("clear"):
            await self._store.clear()
        self._engine.tier.invalidate(clear=True)
        self._meter.invalidated("clear", "local")
        await self._engine.tier.publish(clear=True)

    # -- lifecycle ------------------------------------------------------------

    def statistics(self) -> CacheStatistics:
        """Return a snapshot of the cache's counters and state."""
        meter, tier = self._meter, self._engine.tier
        local = tier.local
        return CacheStatistics(
            hits=meter.hits,
            local_hits=meter.local_hits,
            stale=meter.stale,
            misses=meter.misses,
            errors=meter.unreachable,
            loads=meter.loads,
            load_errors=meter.load_errors,
            coalesced=meter.coalesced_count,
            oversized=meter.oversized_count,
            local_entries=0 if local is None else len(local),
            local_bytes=0 if local is None else local.bytes,
            in_flight=self._engine.in_flight,
            backend_available=not self._guard.is_open,
            local_coherent=tier.coherent,
        )

    async def ping(self) -> None:
        """Check now that the backend answers: the startup check of a misconfigured cache.

        While Redis fails, the cache serves from its loaders and logs one WARNING
        (`scalepy.backends`); call this at startup, e.g. in
        `health.lifespan(on_startup=[cache.ping])`, to refuse to start instead.

        Raises:
            BackendUnavailable: Redis cannot be reached, or refused the password or
                the database index (`BackendTimeout` if it did not answer in time);
                the message names the cause, `backend` the masked URL.
        """
        await self._guard.ping(self._store)

    async def _open(self) -> None:
        """Start listening for other processes' invalidations (the first lookup also does)."""
        await self._engine.tier.start()

    async def start(self) -> None:
        """Deprecated alias of `open()`."""
        deprecated("Cache.start()", "Cache.open()")
        await self.open()

    async def _aclose(self) -> None:
        """Stop background work and the invalidation channel; close the store if owned."""
        await self._engine.aclose()
        await self._engine.tier.aclose()
        if self._owns_store:
            await self._store.aclose()

    def __repr__(self) -> str:
        return (
            f"<Cache namespace={self.namespace!r} store={type(self._store).__name__} "
            f"local={self._engine.tier.local!r} guard={self._guard!r}>"
        )

    @contextlib.contextmanager
    def _backend_call(self, operation: str) -> Iterator[None]:
        """Report a manual operation's outcome to the guard and the metrics; errors propagate."""
        try:
            yield
        except BackendError as exc:
            self._engine.writer.failed(operation, exc)
            raise
        self._guard.record_success()


def _check_key(key: object) -> None:
    if not isinstance(key, str) or not key:
        raise ConfigurationError(f"a cache key must be a non-empty string, got {key!r}")
