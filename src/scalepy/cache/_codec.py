"""Values to payload bytes and back, bound to where they are stored when the serializer can.

With a `ContextSerializer` (the signed pickle) every payload is bound to the
cache's namespace and the entry's key: bytes copied to another key, or into
another namespace, fail to decode there and read as a miss, instead of serving
one user's value (say `role=admin`) to another. Other serializers bind nothing:
their bytes carry no secret, so anyone able to write Redis can forge them anyway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scalepy.serializers import ContextSerializer

if TYPE_CHECKING:
    from scalepy.serializers import Serializer

__all__ = ("Codec",)


class Codec:
    """The cache's serializer, keyed by entry.

    Args:
        serializer: How values become bytes.
        namespace: The cache's namespace, part of every context.
    """

    __slots__ = ("_bound", "_prefix", "_serializer")

    def __init__(self, serializer: Serializer, namespace: str) -> None:
        self._serializer = serializer
        self._bound = serializer if isinstance(serializer, ContextSerializer) else None
        # The namespace is length-prefixed: no namespace plus key spells another's.
        self._prefix = f"scalepy.cache:{len(namespace)}:{namespace}:".encode(
            "utf-8", "surrogatepass"
        )

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
        if self._bound is None:
            return self._serializer.loads(data)
        return self._bound.loads_with(data, context=self.context(key))

    def __repr__(self) -> str:
        return f"<Codec {self._serializer!r} bound={self._bound is not None}>"
