"""Values to payload bytes and back, typed by the function, bound to where they are stored.

Every cached function has its own codec, made by `for_function()` from its
return annotation (see `scalepy._typed`), so what comes out of the cache is the
type the function returns; manual calls (`Cache.get`, `Cache.set`) and untyped
functions use the cache's own. A payload that no longer decodes into the
annotation (the type changed between deploys) is read as a miss by the engine;
the codec logs it once per function.

With a `ContextSerializer` (the signed pickle) every payload is bound to the
cache's namespace and the entry's key: bytes copied to another key, or into
another namespace, fail to decode there and read as a miss, instead of serving
one user's value (say `role=admin`) to another. Other serializers bind nothing:
their bytes carry no secret, so anyone able to write Redis can forge them anyway.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from scalepy._typed import serializer_for
from scalepy.errors import SerializationError
from scalepy.serializers import ContextSerializer

if TYPE_CHECKING:
    from collections.abc import Callable

    from scalepy.serializers import Serializer

_logger = logging.getLogger("scalepy.cache")

__all__ = ("Codec",)


class Codec:
    """The cache's serializer, keyed by entry.

    Args:
        serializer: How values become bytes.
        namespace: The cache's namespace, part of every context.
        origin: The function whose values these are; `""` for the cache's own codec.
    """

    __slots__ = ("_bound", "_namespace", "_origin", "_prefix", "_serializer", "_warned")

    def __init__(self, serializer: Serializer, namespace: str, origin: str = "") -> None:
        self._serializer = serializer
        self._namespace = namespace
        self._origin = origin
        self._warned = False
        self._bound = serializer if isinstance(serializer, ContextSerializer) else None
        # The namespace is length-prefixed: no namespace plus key spells another's.
        self._prefix = f"scalepy.cache:{len(namespace)}:{namespace}:".encode(
            "utf-8", "surrogatepass"
        )

    def for_function(
        self, function: Callable[..., Any], select: Callable[[dict[str, Any]], Any], origin: str
    ) -> Codec:
        """Return the codec of `function`'s values: typed by the annotation `select` picks.

        Raises:
            ConfigurationError: msgspec is not installed and the annotation needs it.
        """
        serializer = serializer_for(self._serializer, function, select, origin=origin)
        return Codec(serializer, self._namespace, origin)

    def context(self, key: str) -> bytes:
        """Return the context a payload of `key` is bound to."""
        # surrogatepass: a memory store accepts keys that UTF-8 cannot spell.
        return self._prefix + key.encode("utf-8", "surrogatepass")

    def dumps(self, key: str, value: Any) -> bytes:
        """Encode `value`, to be stored under `key`.

        Raises:
            SerializationError: The serializer cannot encode `value`.
        """
        if self._bound is None:
            return self._serializer.dumps(value)
        return self._bound.dumps_with(value, context=self.context(key))

    def loads(self, key: str, data: bytes) -> Any:
        """Decode a payload read from `key`.

        Raises:
            SerializationError: The bytes are not valid, or were bound to another key.
        """
        try:
            if self._bound is None:
                return self._serializer.loads(data)
            return self._bound.loads_with(data, context=self.context(key))
        except SerializationError as exc:
            if self._origin and not self._warned:
                self._warned = True
                _logger.warning(
                    "%s: a cached value (key %r) does not decode as its return type (stored "
                    "before the type changed, or in another format?): %s; read as a miss, "
                    "recomputed and rewritten; logged once, counted in "
                    "scalepy.cache.entries.undecodable",
                    self._origin,
                    key[:100],
                    exc,
                )
            raise

    def __repr__(self) -> str:
        bound = self._bound is not None
        return f"<Codec {self._serializer!r} bound={bound} origin={self._origin!r}>"
