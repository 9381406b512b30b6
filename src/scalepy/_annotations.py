"""What an annotation holds, read without importing anything it names (Pydantic included)."""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ("involves_pydantic", "json_native", "type_name")

_PLAIN_JSON: frozenset[Any] = frozenset({Any, object, type(None), None, bool, int, float, str})


def _classes(annotation: Any) -> Iterator[type]:
    if isinstance(annotation, type) and not get_args(annotation):
        yield annotation
    if get_origin(annotation) is not Literal:
        for argument in get_args(annotation):
            yield from _classes(argument)


def involves_pydantic(annotation: Any) -> bool:
    """Tell whether a Pydantic model appears in `annotation`, without importing Pydantic."""
    return any(
        base.__name__ == "BaseModel" and base.__module__.startswith("pydantic")
        for cls in _classes(annotation)
        for base in cls.__mro__
    )


def json_native(annotation: Any) -> bool:
    """Tell whether plain JSON gives values of `annotation` back with their type."""
    if annotation in _PLAIN_JSON or annotation in (list, dict):
        return True
    origin, arguments = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return json_native(arguments[0])
    if origin is Literal:
        return all(isinstance(value, (str, int, bool, type(None))) for value in arguments)
    if origin is dict:
        return arguments[0] is str and json_native(arguments[1])
    if origin in (list, Union, types.UnionType):
        return all(json_native(argument) for argument in arguments)
    return False


def type_name(annotation: Any) -> str:
    """Return how `annotation` is spelled in code, for messages: `list[Todo] | None`."""
    arguments, origin = get_args(annotation), get_origin(annotation)
    if annotation is type(None) or annotation is None:
        return "None"
    if annotation is Ellipsis:
        return "..."
    if isinstance(annotation, type) and not arguments:  # list[int] passes isinstance
        return annotation.__qualname__
    if origin in (Union, types.UnionType):
        return " | ".join(map(type_name, arguments))
    if arguments and origin not in (Literal, Annotated):
        return f"{type_name(origin)}[{', '.join(map(type_name, arguments))}]"
    return repr(annotation).replace("typing.", "")
