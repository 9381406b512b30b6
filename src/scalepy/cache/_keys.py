"""Cache keys: a function's identity plus its bound arguments in a canonical typed encoding.

`canonical(value)` is injective and self-delimiting: each value starts with a tag
naming its type and carries its own length or terminator, so `1`, `1.0`, `True`
and `"1"` differ, a concatenation of encodings splits back one way only, and
values that compare equal only across types never share a key. Dicts and sets
are sorted by their members' encodings, so their order does not matter.

`KeyBuilder` binds a call's arguments to the function's signature (defaults
applied, `self`/`cls` skipped), so positional and keyword spellings of one call
give one key. Arguments too long for a readable key are replaced by a blake2b
digest of their encoding.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import hashlib
import inspect
import string
import uuid
from typing import TYPE_CHECKING, Any

from scalepy.cache._template import KeyTemplate
from scalepy.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

__all__ = ("KeyBuilder", "canonical", "template_fields")

MAX_ARGUMENTS_LENGTH = 200
"""Encoded arguments longer than this many characters are replaced by their digest."""

_DIGEST_BYTES = 16


def _string(value: str) -> str:
    if value.isascii():
        return f"s{len(value)}:{value}"
    try:
        value.encode()
    except UnicodeEncodeError:
        # Lone surrogates cannot travel to Redis as UTF-8: spell their code units.
        raw = value.encode("utf-8", "surrogatepass")
        return f"x{len(raw)}:{raw.hex()}"
    return f"s{len(value)}:{value}"


def _sequence(tag: str, items: Iterable[object]) -> str:
    parts = [canonical(item) for item in items]
    return f"{tag}{len(parts)}:{''.join(parts)}"


def _unordered(tag: str, items: Iterable[object]) -> str:
    parts = sorted(canonical(item) for item in items)
    return f"{tag}{len(parts)}:{''.join(parts)}"


def _mapping(value: Mapping[Any, Any]) -> str:
    parts = sorted(canonical(key) + canonical(item) for key, item in value.items())
    return f"d{len(parts)}:{''.join(parts)}"


def _named(kind: type, body: str) -> str:
    name = f"{kind.__module__}.{kind.__qualname__}"
    return f"{len(name)}:{name}{body}"


# Exact type -> encoder. Bodies never contain ';' where ';' terminates them, and
# every other body is length-prefixed.
_ENCODERS: dict[type, Callable[[Any], str]] = {
    type(None): lambda _: "N",
    bool: lambda value: "T" if value else "F",
    int: lambda value: f"i{value};",
    float: lambda value: f"f{value!r};",
    str: _string,
    bytes: lambda value: f"b{len(value)}:{value.hex()}",
    tuple: lambda value: _sequence("t", value),
    list: lambda value: _sequence("l", value),
    dict: _mapping,
    set: lambda value: _unordered("e", value),
    frozenset: lambda value: _unordered("z", value),
    uuid.UUID: lambda value: f"u{value.hex}",
    datetime.datetime: lambda value: f"D{value.isoformat()};",
    datetime.date: lambda value: f"a{value.isoformat()};",
    datetime.time: lambda value: f"m{value.isoformat()};",
    datetime.timedelta: lambda value: f"k{value.days},{value.seconds},{value.microseconds};",
    decimal.Decimal: lambda value: f"c{value};",
}


def canonical(value: object) -> str:
    """Return the canonical, typed, injective encoding of one argument value.

    Supported: `None`, `bool`, `int`, `float`, `str`, `bytes`, `tuple`, `list`,
    `dict`, `set`, `frozenset` (nested freely), enum members, `uuid.UUID`,
    `datetime` / `date` / `time` / `timedelta`, `decimal.Decimal`, and
    subclasses of these (encoded with their class name).

    Raises:
        ConfigurationError: The value (or something inside it) has another type;
            give the cached function a custom `key=` instead.
    """
    kind = type(value)
    encoder = _ENCODERS.get(kind)
    if encoder is not None:
        return encoder(value)
    if isinstance(value, enum.Enum):
        return "E" + _named(kind, canonical(value.value))
    for base in kind.__mro__[1:]:
        encoder = _ENCODERS.get(base)
        if encoder is not None and base is not object:
            return "O" + _named(kind, encoder(value))
    raise ConfigurationError(
        f"cannot build a cache key from a {kind.__qualname__} argument; supported are "
        "None, bool, int, float, str, bytes, containers of them, enums, UUIDs, dates "
        "and Decimals: give the cached function key= (a template or a callable)"
    )


def template_fields(template: str) -> tuple[str, ...]:
    """Return the field names a `str.format` template refers to, e.g. `("user_id",)`.

    Raises:
        ConfigurationError: The template is malformed or uses a positional field.
    """
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ConfigurationError(f"malformed key template {template!r}: {exc}") from None
    roots = tuple(name.partition(".")[0].partition("[")[0] for name in fields)
    if any(not root or root.isdigit() for root in roots):
        raise ConfigurationError(
            f"key template {template!r} must name its fields, e.g. 'user:{{user_id}}'"
        )
    return roots


class KeyBuilder:
    """Turns a call of one function into its cache key (and its bound arguments).

    Args:
        function: The cached function (a callable object is named after its class).
        key: `None` for `module.qualname` plus the canonical arguments; a template
            such as `"user:{user_id}"` formatted with the bound arguments; or a
            callable taking the call's arguments and returning the key.
        version: Appended to the function's identity, so a new version of the
            function never reads entries of the old one.

    Raises:
        ConfigurationError: A template names a field that is not a parameter.
    """

    __slots__ = ("_fast", "_key", "_names", "_prefix", "_signature", "_skip", "_template")

    def __init__(
        self,
        function: Callable[..., object],
        *,
        key: str | Callable[..., str] | None = None,
        version: str | int | None = None,
    ) -> None:
        self._signature = inspect.signature(function)
        parameters = list(self._signature.parameters.values())
        self._skip = 1 if parameters and parameters[0].name in ("self", "cls") else 0
        self._names = tuple(parameter.name for parameter in parameters)
        simple = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        # A call passing every parameter positionally needs no binding at all.
        self._fast = len(parameters) if all(p.kind in simple for p in parameters) else -1
        named = function if hasattr(function, "__qualname__") else type(function)
        identity = f"{named.__module__}.{named.__qualname__}"
        if version is not None:
            identity += f"@{version}"
        self._prefix = identity + ":"
        self._key = key
        self._template: KeyTemplate | None = None
        if isinstance(key, str):
            self.check_template(key)
            self._template = KeyTemplate(key)

    @property
    def name(self) -> str:
        """The function's identity: `module.qualname`, plus `@version` when given."""
        return self._prefix[:-1]

    def check_template(self, template: str) -> None:
        """Raise `ConfigurationError` unless every field of `template` is a parameter."""
        unknown = [name for name in template_fields(template) if name not in self._names]
        if unknown:
            raise ConfigurationError(
                f"template {template!r} names {', '.join(unknown)}, which "
                f"{'is not a parameter' if len(unknown) == 1 else 'are not parameters'}; "
                f"parameters: {', '.join(self._names) or '(none)'}"
            )

    def arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Return the call's arguments by parameter name, defaults applied.

        Raises:
            TypeError: The arguments do not fit the signature.
        """
        if not kwargs and len(args) == self._fast:
            return dict(zip(self._names, args, strict=True))
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound.arguments

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """Return the key of the call `function(*args, **kwargs)`.

        Raises:
            ConfigurationError: An argument's type has no canonical encoding.
            TypeError: The arguments do not fit the signature.
        """
        key = self._key
        if key is None:
            if not kwargs and len(args) == self._fast:
                values: Iterable[object] = args[self._skip :] if self._skip else args
            else:
                values = list(self.arguments(args, kwargs).values())[self._skip :]
            encoded = "".join([canonical(value) for value in values])
            if len(encoded) > MAX_ARGUMENTS_LENGTH:
                digest = hashlib.blake2b(encoded.encode(), digest_size=_DIGEST_BYTES)
                encoded = "#" + digest.hexdigest()
            return self._prefix + encoded
        if self._template is not None:
            return self._template(self.arguments(args, kwargs))
        assert not isinstance(key, str)  # a template is formatted by self._template
        return key(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<KeyBuilder {self._prefix[:-1]!r} key={self._key!r}>"
