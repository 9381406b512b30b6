"""Which serializer keeps a function's values their type: read from its annotations.

The cache and the queue ask `typed()` once per decorated function (or task
parameter) for the serializer of one annotation. Untyped values (no annotation,
`Any`, `object`) keep the plain serializer. A serializer with the
`TypedSerializer` ability specialises itself: JSON and MessagePack decode into
the annotation with msgspec, or with Pydantic's `TypeAdapter` when the
annotation holds a Pydantic model (msgspec does not know those). A serializer
without it (pickle, or one of the caller's) already keeps what it keeps and is
used as is.

Without msgspec, an annotation that plain JSON gives back as it is (`int`,
`list[str]`, `dict[str, float | None]`, ...) keeps the plain serializer; any
other (`datetime`, a dataclass, ...) would never come back as its type, so it
is refused at decoration with the `pip install` to run, rather than serving
`str` where `datetime` was promised.

Annotations are resolved when the function is decorated; one that names a
class defined later (a forward reference) is resolved at first use instead.
"""

from __future__ import annotations

import logging
import typing
from typing import TYPE_CHECKING, Any

from scalepy._annotations import json_native, type_name
from scalepy.errors import ConfigurationError
from scalepy.serializers import TypedSerializer

if TYPE_CHECKING:
    from collections.abc import Callable

    from scalepy.serializers import Serializer

__all__ = (
    "UNTYPED",
    "Deferred",
    "annotations_of",
    "serializer_for",
    "typed",
)

_logger = logging.getLogger("scalepy")

UNTYPED: Any = Any
"""The annotation of values nothing is known about: no annotation, `Any` or `object`."""


def annotations_of(function: Callable[..., Any]) -> dict[str, Any] | None:
    """Return `function`'s resolved annotations (`"return"` included), or `None` if unresolved.

    `None` means a name in an annotation is not defined yet: a forward reference
    to a class defined further down, or a name imported only under `TYPE_CHECKING`
    (or a string annotation that does not parse).
    """
    try:
        return typing.get_type_hints(function)
    except (NameError, AttributeError, SyntaxError):
        return None
    except TypeError:  # not a function (a callable object, a partial): nothing to read
        return {}


def typed(serializer: Serializer, annotation: Any, *, origin: str) -> Serializer:
    """Return the serializer that gives values of `annotation` back with their type.

    Args:
        serializer: The primitive's serializer (the plain path).
        annotation: The values' type; `UNTYPED` keeps `serializer`.
        origin: Whose values these are (`"get_todo"`), for messages.

    Raises:
        ConfigurationError: msgspec is not installed and `annotation` needs it.
    """
    if annotation in (Any, object) or not isinstance(serializer, TypedSerializer):
        return serializer
    try:
        return serializer.for_type(annotation)
    except ImportError as exc:
        if json_native(annotation):
            return serializer  # plain JSON already gives these back as they were
        raise ConfigurationError(
            f"{origin} returns or takes {type_name(annotation)}, which {serializer.name} alone "
            f"gives back as plain data: {exc}"
        ) from None
    except TypeError as exc:  # a type the codec cannot decode into, e.g. a union of classes
        _logger.warning(
            "%s: values of %s are cached and queued as plain %s (%s); they come back as "
            "plain data, not as %s",
            origin,
            type_name(annotation),
            serializer.name,
            exc,
            type_name(annotation),
        )
        return serializer


def serializer_for(
    serializer: Serializer,
    function: Callable[..., Any],
    select: Callable[[dict[str, Any]], Any],
    *,
    origin: str,
) -> Serializer:
    """Return the serializer of the values `select` picks from `function`'s annotations.

    An annotation naming a class not defined yet is resolved at first use; if it
    still cannot be (a name imported only under `TYPE_CHECKING`), or then needs
    msgspec, the values stay plain and one WARNING says why: a call never raises.

    Args:
        serializer: The primitive's serializer.
        function: The decorated function.
        select: Picks the annotation from the resolved ones, e.g. `hints["return"]`.
        origin: Whose values these are, for messages.

    Raises:
        ConfigurationError: msgspec is not installed and the annotation needs it.
    """
    hints = annotations_of(function)
    if hints is not None:
        return typed(serializer, select(hints), origin=origin)

    def resolve() -> Serializer:
        late = annotations_of(function)
        try:
            if late is None:
                raise ConfigurationError(
                    "a name in its annotations is not defined (imported only under "
                    "TYPE_CHECKING?): import it at run time"
                )
            return typed(serializer, select(late), origin=origin)
        except ConfigurationError as exc:
            _logger.warning("%s: values stay plain %s: %s", origin, serializer.name, exc)
            return serializer

    return Deferred(resolve, serializer.name)


class Deferred:
    """A serializer resolved at first use, for an annotation that named a class defined later.

    Args:
        resolve: Returns the serializer; called once, at the first `dumps` or `loads`.
        name: The format's name, known before resolving.
    """

    __slots__ = ("_resolve", "_serializer", "name")

    def __init__(self, resolve: Callable[[], Serializer], name: str) -> None:
        self._resolve = resolve
        self._serializer: Serializer | None = None
        self.name = name

    def _get(self) -> Serializer:
        if self._serializer is None:
            self._serializer = self._resolve()
        return self._serializer

    def dumps(self, value: Any) -> bytes:
        """Encode with the resolved serializer."""
        return self._get().dumps(value)

    def loads(self, data: bytes) -> Any:
        """Decode with the resolved serializer."""
        return self._get().loads(data)

    def __repr__(self) -> str:
        return f"<Deferred {self._serializer!r}>"
