"""What `Cache.cached` and `Cache.cached_many` return: the function, cached, plus extras."""

from __future__ import annotations

import dataclasses
import functools
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    ParamSpec,
    Protocol,
    TypeVar,
    cast,
    get_args,
    overload,
)

from scalepy._callables import is_async_callable
from scalepy._typed import UNTYPED
from scalepy.cache._bulk import fetch_many
from scalepy.cache._engine import MISSING
from scalepy.cache._keys import KeyBuilder, template_fields
from scalepy.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
    from typing import Concatenate, Self

    from scalepy.cache._engine import Engine
    from scalepy.cache._policy import Policy

__all__ = ("CachedFunction", "CachedManyFunction", "check_tags")

P = ParamSpec("P")
P2 = ParamSpec("P2")
R = TypeVar("R")
K = TypeVar("K")
V = TypeVar("V")
S = TypeVar("S")

_MAX_TAG_BYTES = 1024
_UNBOUND: Any = object()


class KeyDeleter(Protocol):
    """What a cached function needs of its `Cache`: deleting keys.

    A protocol rather than `Cache` itself, which imports this module.
    """

    async def delete(self, *keys: str) -> None:
        """Remove entries, here and in every process's L1."""


def check_tags(tags: Iterable[object]) -> tuple[str, ...]:
    """Return `tags` as a tuple without repeats, after checking each one.

    Raises:
        ConfigurationError: `tags` is a single string, or a tag is empty, not a
            string, not encodable as UTF-8 or longer than 1024 bytes.
    """
    if isinstance(tags, str):
        raise ConfigurationError(f"tags must be a collection of strings, e.g. [{tags!r}]")
    unique: list[str] = []
    for tag in dict.fromkeys(tags):
        if not isinstance(tag, str) or not tag:
            raise ConfigurationError(f"a tag must be a non-empty string, got {tag!r}")
        unique.append(tag)
        try:
            size = len(tag.encode())
        except UnicodeEncodeError:
            raise ConfigurationError(f"a tag must be valid UTF-8, got {tag!r}") from None
        if size > _MAX_TAG_BYTES:
            raise ConfigurationError(f"a tag must be at most {_MAX_TAG_BYTES} bytes: {tag[:40]!r}…")
    return tuple(unique)


def _returned(hints: dict[str, Any]) -> Any:
    return hints.get("return", UNTYPED)


def _mapped(hints: dict[str, Any]) -> Any:
    """The type of one value of a bulk loader returning `Mapping[K, V]`: `V`."""
    arguments = get_args(hints.get("return"))
    return arguments[1] if len(arguments) == 2 else UNTYPED


def _require_async(function: object, decorator: str) -> None:
    if not callable(function):  # `@cache.cached(60)`: an option given by position
        raise ConfigurationError(
            f"{decorator} takes its options by keyword, e.g. @{decorator}(ttl=60); got {function!r}"
        )
    if not is_async_callable(function):
        raise ConfigurationError(
            f"{decorator} caches async functions (async def); "
            f"{getattr(function, '__qualname__', function)!r} is not one"
        )


class CachedFunction(Generic[P, R]):
    """An async function whose results are cached, keeping its signature.

    Made by `Cache.cached`. Calling it returns the cached result or computes it
    (once across concurrent callers). Works on methods too: `self` and `cls` are
    not part of the key, so every instance shares the entries.
    """

    __slots__ = (
        "__dict__",
        "_cache",
        "_condition",
        "_engine",
        "_function",
        "_instance",
        "_keys",
        "_policy",
        "_static_tags",
        "_tag_maker",
    )

    __name__: str
    __qualname__: str
    __wrapped__: Callable[P, Awaitable[R]]
    """The undecorated function (set by `functools.update_wrapper`)."""

    def __init__(
        self,
        function: Callable[P, Awaitable[R]],
        cache: KeyDeleter,
        engine: Engine,
        policy: Policy,
        *,
        key: str | Callable[..., str] | None,
        tags: Sequence[str] | Callable[..., Iterable[str]],
        condition: Callable[[Any], bool] | None,
        version: str | int | None,
    ) -> None:
        _require_async(function, "cache.cached")
        functools.update_wrapper(self, function)
        self._function: Callable[..., Awaitable[Any]] = function
        self._cache = cache
        self._engine = engine
        self._keys = KeyBuilder(function, key=key, version=version)
        name = self._keys.name
        codec = engine.codec.for_function(function, _returned, name)
        self._policy = dataclasses.replace(policy, origin=name, codec=codec)
        self._condition = condition
        self._instance = _UNBOUND
        self._static_tags: tuple[str, ...] = ()
        self._tag_maker: Callable[[tuple[Any, ...], dict[str, Any]], tuple[str, ...]] | None = None
        if callable(tags):
            self._tag_maker = lambda args, kwargs: check_tags(tags(*args, **kwargs))
        elif any(template_fields(tag) for tag in check_tags(tags)):
            for tag in tags:
                self._keys.check_template(tag)
            templates = tuple(tags)
            arguments = self._keys.arguments
            self._tag_maker = lambda args, kwargs: check_tags(
                [tag.format_map(arguments(args, kwargs)) for tag in templates]
            )
        else:
            self._static_tags = check_tags(tags)

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Return the cached result of `function(*args, **kwargs)`, computing it if needed."""
        call = args if self._instance is _UNBOUND else (self._instance, *args)
        key = self._keys(call, kwargs)
        value = self._engine.local_hit(key)
        if value is not MISSING:
            return cast("R", value)
        tags = self._static_tags if self._tag_maker is None else self._tag_maker(call, kwargs)
        load = functools.partial(self._function, *call, **kwargs)
        return cast("R", await self._engine.fetch(key, load, self._policy, tags, self._condition))

    def key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """Return the cache key of this call (usable with `Cache.get` and `Cache.delete`)."""
        call = args if self._instance is _UNBOUND else (self._instance, *args)
        return self._keys(call, kwargs)

    async def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """Remove the cached result of this call, in every process.

        Raises:
            BackendError: The backend failed; the result may still be served.
        """
        await self._cache.delete(self.key(*args, **kwargs))

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> Self: ...

    @overload
    def __get__(
        self: CachedFunction[Concatenate[S, P2], R], instance: S, owner: type[Any] | None = None
    ) -> CachedFunction[P2, R]: ...

    def __get__(self, instance: object, owner: type[Any] | None = None) -> Any:
        """Bind to `instance` when looked up on it, as a function becomes a method."""
        if instance is None:
            return self
        bound = cast("CachedFunction[..., R]", object.__new__(CachedFunction))
        for name in CachedFunction.__slots__:
            object.__setattr__(bound, name, getattr(self, name))
        bound._instance = instance
        return bound

    def __repr__(self) -> str:
        return f"<CachedFunction {self._keys!r} policy={self._policy!r}>"


class CachedManyFunction(Generic[K, V, P]):
    """A bulk loader cached per item: a call loads only the items not cached.

    Made by `Cache.cached_many`. Concurrent calls share the loads of the items
    they have in common, within one process.
    """

    __slots__ = ("__dict__", "_cache", "_engine", "_function", "_key", "_name", "_policy", "_tags")

    def __init__(
        self,
        function: Callable[Concatenate[list[K], P], Awaitable[Mapping[K, V]]],
        cache: KeyDeleter,
        engine: Engine,
        policy: Policy,
        *,
        key: Callable[[K], str] | None,
        tags: Callable[[K], Iterable[str]] | None,
        version: str | int | None,
    ) -> None:
        _require_async(function, "cache.cached_many")
        functools.update_wrapper(self, function)
        self._name = getattr(function, "__qualname__", repr(function))
        self._function = function
        self._cache = cache
        self._engine = engine
        self._tags = tags
        keys = KeyBuilder(function, version=version)
        codec = engine.codec.for_function(function, _mapped, keys.name)
        self._policy = dataclasses.replace(policy, origin=keys.name, codec=codec)
        self._key: Callable[[K, tuple[Any, ...], dict[str, Any]], str] = (
            (lambda item, args, kwargs: keys((item, *args), kwargs))
            if key is None
            else (lambda item, args, kwargs: key(item))
        )

    async def __call__(
        self, ids: Iterable[K], *args: P.args, **kwargs: P.kwargs
    ) -> dict[K, V | None]:
        """Return every id's value (`None` for ids the function left out), loading only misses."""
        keys = {item: self._key(item, args, kwargs) for item in ids}
        tags = self._tags
        tags_of = {item: check_tags(tags(item)) if tags else () for item in keys}

        async def load(missing: list[K]) -> Mapping[K, V]:
            return await self._function(missing, *args, **kwargs)

        return await fetch_many(self._engine, keys, load, self._policy, tags_of)

    def key(self, item: K, *args: P.args, **kwargs: P.kwargs) -> str:
        """Return the cache key of one id under these other arguments."""
        return self._key(item, args, kwargs)

    async def invalidate(self, ids: Iterable[K], *args: P.args, **kwargs: P.kwargs) -> None:
        """Remove these ids' cached values, in every process.

        Raises:
            BackendError: The backend failed; the values may still be served.
        """
        await self._cache.delete(*(self._key(item, args, kwargs) for item in ids))

    def __repr__(self) -> str:
        return f"<CachedManyFunction {self._name!r} policy={self._policy!r}>"
