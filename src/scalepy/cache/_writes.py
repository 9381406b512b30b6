"""How a loaded value becomes an entry: encoded once, stored (quietly), kept in the L1.

Encoding happens where the value is produced, by the function's codec (typed by
its return annotation). A value that cannot be encoded is returned to its caller
but not stored, counted, and logged once per function: the caller has its value,
and a cache must not turn a serializer's limits into errors. Storing is quiet: a
backend failure is counted and reported to the guard, never raised, because the
caller already has its value. A key invalidated while its value was being computed is not stored at
all (its flight is marked `invalidated`), so an invalidation cannot be undone by a
load that started before it.

A value larger than `max_value_bytes` once serialized is returned to its caller
but not stored, counted, and logged once per function: writing it on the
connection every caller shares would hold up their commands for as long as it
takes to send, long enough to time them out and open the guard.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any, NamedTuple

from scalepy.cache._entry import encode_entry
from scalepy.cache._local import Serialized
from scalepy.errors import BackendError, SerializationError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from scalepy.backends.guard import BackendGuard
    from scalepy.cache._codec import Codec
    from scalepy.cache._entry import Found
    from scalepy.cache._flight import Flight
    from scalepy.cache._policy import Policy
    from scalepy.cache._store import CacheStore, ReleaseOnSetCacheStore
    from scalepy.cache._telemetry import Meter
    from scalepy.cache._tier import LocalTier

__all__ = ("Prepared", "Writer")

_logger = logging.getLogger("scalepy.cache")


class Prepared(NamedTuple):
    """An entry ready to store."""

    payload: bytes
    """The serialized value (empty for `None`)."""
    data: bytes
    """The stored bytes: header and payload."""
    fresh: float
    """Seconds the value is fresh (jitter applied)."""
    ttl: float
    """The entry's hard TTL: freshness plus the stale window."""
    is_none: bool
    """The value is `None`."""


class Writer:
    """Writes entries for one cache; see the module docstring."""

    __slots__ = ("_codec", "_guard", "_max_value_bytes", "_meter", "_store", "_tier", "_warned")

    def __init__(
        self,
        store: CacheStore,
        *,
        codec: Codec,
        guard: BackendGuard,
        meter: Meter,
        tier: LocalTier,
        max_value_bytes: int,
    ) -> None:
        self._store = store
        self._max_value_bytes = max_value_bytes
        self._warned: set[tuple[str, str]] = set()  # (origin, why) already logged
        self._codec = codec
        self._guard = guard
        self._meter = meter
        self._tier = tier

    def encode(
        self,
        key: str,
        value: Any,
        policy: Policy,
        tags: Sequence[str],
        versions: Sequence[int],
        load_time: float,
        *,
        strict: bool = False,
    ) -> Prepared | None:
        """Return `value` as an entry, or `None` when it is not to be stored.

        Not stored: the policy gives it no lifetime, it cannot be encoded, or it
        exceeds `max_value_bytes` once serialized (both counted, and logged once
        per `policy.origin`).

        Raises:
            SerializationError: `strict`, and the serializer cannot encode `value`
                or the value exceeds `max_value_bytes`.
        """
        is_none = value is None
        fresh = policy.fresh_lifetime(is_none, random.random())
        if fresh <= 0:
            return None
        try:
            payload = b"" if is_none else (policy.codec or self._codec).dumps(key, value)
        except SerializationError as exc:
            if strict:
                raise
            self._meter.unencodable.record(1, self._meter.labels)
            self._warn_once(
                policy.origin,
                "unencodable",
                "%s: a value (key %r) cannot be serialized: %s; returned, not cached; "
                "logged once, counted in scalepy.cache.values.unencodable",
                key[:100],
                exc,
            )
            return None
        if len(payload) > self._max_value_bytes:
            self._too_large(key, len(payload), policy.origin, strict=strict)
            return None
        data = encode_entry(
            payload,
            is_none=is_none,
            stale_window=policy.stale_window,
            load_time=load_time,
            tags=tuple(zip(tags, versions, strict=True)),
        )
        return Prepared(payload, data, fresh, fresh + policy.stale_window, is_none)

    def _too_large(self, key: str, size: int, origin: str, *, strict: bool) -> None:
        self._meter.too_large()
        limit = self._max_value_bytes
        if strict:
            raise SerializationError(
                f"cannot cache {key[:100]!r}: {size} bytes serialized, over "
                f"max_value_bytes ({limit})"
            )
        self._warn_once(
            origin,
            "oversized",
            "%s: a value of %d bytes serialized (key %r) is over max_value_bytes (%d): "
            "returned, not cached; logged once, counted in scalepy.cache.values.oversized",
            size,
            key[:100],
            limit,
        )

    def _warn_once(self, origin: str, why: str, message: str, *args: object) -> None:
        if (origin, why) not in self._warned:
            self._warned.add((origin, why))
            _logger.warning(message, origin or "Cache.get_or_load", *args)

    def prepare(
        self,
        key: str,
        flight: Flight | None,
        value: Any,
        policy: Policy,
        tags: Sequence[str],
        versions: Sequence[int] | None,
        load_time: float,
        condition: Callable[[Any], bool] | None,
    ) -> Prepared | None:
        """Return the entry to store for a loaded value, or `None` if it must not be stored.

        Not stored: tag versions unknown (the read failed), the key invalidated
        during the load (`flight` marked), `condition` false, or a lifetime of 0.

        """
        if versions is None or (flight is not None and flight.invalidated):
            return None
        if condition is not None and not condition(value):
            return None
        return self.encode(key, value, policy, tags, versions, load_time)

    async def store(self, key: str, entry: Prepared, flight: Flight | None = None) -> None:
        """Store `entry` unless `flight` was invalidated meanwhile; failures are counted."""
        if (flight is not None and flight.invalidated) or not self._guard.available():
            return
        try:
            await self._store.set(key, entry.data, entry.ttl)
        except BackendError as exc:
            self.failed("write", exc)
        else:
            self._guard.record_success()

    async def store_and_release(
        self, key: str, entry: Prepared, flight: Flight, store: ReleaseOnSetCacheStore, token: str
    ) -> bool:
        """Store `entry` and release `key`'s load lock in one step, as `store` would write.

        Returns:
            Whether the step was taken; when not (`flight` invalidated, or the guard
            open), nothing was sent and the caller releases the lock.
        """
        if flight.invalidated or not self._guard.available():
            return False
        try:
            await store.set_and_release(key, entry.data, entry.ttl, token)
        except BackendError as exc:
            self.failed("write", exc)
        else:
            self._guard.record_success()
        return True

    def keep(
        self,
        key: str,
        entry: Prepared,
        load_time: float,
        tags: tuple[str, ...],
        policy: Policy,
        generation: int,
    ) -> None:
        """Hold a just-computed entry in the L1, serialized: its first hit decodes it.

        Not decoded now, so a miss costs no decoding and no weighing, and a value
        never read again is never decoded. With a store in this process (no
        channel) reading the entry back costs no round trip, so it is not held
        at all but read on its first hit; the L1 only drops the key's previous value.
        """
        tier = self._tier
        local = tier.local
        if local is None:
            return
        if tier.channel is None:
            local.drop(key)
            return
        codec = policy.codec or self._codec
        tier.keep(  # unless the L1 is not coherent now
            key,
            None if entry.is_none else Serialized(codec, entry.payload),
            fresh=entry.fresh,
            load_time=load_time,
            tags=tags,
            policy=policy,
            generation=generation,
        )

    def keep_found(self, key: str, found: Found, policy: Policy, generation: int) -> None:
        """Hold a value just read from the backend in the L1."""
        if self._tier.local is None:  # every Redis hit with the L1 off
            return
        entry = found.entry
        self._tier.keep(
            key,
            found.value,
            fresh=found.remaining - entry.stale_window,
            load_time=entry.load_time,
            tags=tuple(tag for tag, _ in entry.tags),
            policy=policy,
            generation=generation,
        )

    async def write(
        self,
        key: str,
        value: Any,
        policy: Policy,
        tags: tuple[str, ...],
        versions: tuple[int, ...] | None,
        load_time: float,
        generation: int,
        condition: Callable[[Any], bool] | None = None,
        flight: Flight | None = None,
    ) -> None:
        """Prepare, store and keep a loaded value (for refreshes and bulk loads)."""
        entry = self.prepare(key, flight, value, policy, tags, versions, load_time, condition)
        if entry is not None:
            await self.store(key, entry, flight)
            self.keep(key, entry, load_time, tags, policy, generation)

    def failed(self, operation: str, error: BackendError) -> None:
        """Report a failed backend operation to the guard and the metrics."""
        self._guard.record_failure(error)
        self._meter.backend_error(operation, error)
