"""One way from a primitive's `backend` argument to its store, the same for every primitive.

A `backend` is one of:

- a URL (`"memory://"`, `"redis://…"`, …) or its parsed `BackendConfig`: the
  primitive builds the store, and a Redis client of its own that it closes;
- a `RedisClient`: the primitive's store runs on it (through a `with_timeout`
  view when the primitive has a timeout of its own), and the client is closed
  only when the primitive is given `owns_client=True`;
- a store object: used as it is, never closed by the primitive.

Every primitive defaults to `DEFAULT_BACKEND` (`memory://`) and checks its
namespace with `check_namespace`, whatever the backend. What works only on Redis
(shared breaker state, pooled clients) takes its client from `require_client`,
which refuses `memory://` in the same words for each.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from scalepy._validation import check_finite
from scalepy.backends._url import (
    MemoryConfig,
    RedisClusterConfig,
    RedisConfig,
    none_hint,
    parse_backend_url,
)
from scalepy.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable

    from typing_extensions import TypeIs

    from scalepy.backends._url import BackendConfig
    from scalepy.backends.redis import RedisClient
    from scalepy.telemetry import Instrumentation

__all__ = (
    "DEFAULT_BACKEND",
    "check_namespace",
    "require_client",
    "resolve_store",
)

DEFAULT_BACKEND = "memory://"
"""Every primitive's default backend: one process, no infrastructure."""

S = TypeVar("S")


def check_namespace(namespace: object) -> None:
    """Raise `ConfigurationError` unless `namespace` is a non-empty str without braces.

    Braces would open a Redis Cluster hash tag of their own (see `KeySpace`); the
    rule holds for `memory://` too, so a namespace that works there works on Redis.
    """
    if not isinstance(namespace, str) or not namespace or "{" in namespace or "}" in namespace:
        raise ConfigurationError(
            f"namespace must be a non-empty string without braces, got {namespace!r}"
        )


def require_client(
    backend: str | BackendConfig | RedisClient,
    *,
    user: str,
    owns_client: bool,
    instrumentation: Instrumentation | None,
) -> tuple[RedisClient, bool]:
    """Return the Redis client `backend` names, for an object that only works on Redis.

    Args:
        backend: A URL, a parsed configuration or a `RedisClient`.
        user: What needs it, named in the error (`"RedisSharedState"`).
        owns_client: For a given client: closing the returned one closes it too.
        instrumentation: Where a client built here sends its metrics.

    Returns:
        `(client, closes)`: closing the client is its user's job when `closes`.

    Raises:
        InvalidBackendURL: The URL cannot be parsed.
        ConfigurationError: `backend` is `memory://`.
    """
    client = _client(
        backend, timeout=None, owns_client=owns_client, instrumentation=instrumentation
    )
    if client is None:
        raise ConfigurationError(
            f"{user} needs Redis: give a Redis URL or a RedisClient, not memory://"
        )
    return client


def _client(
    backend: str | BackendConfig | RedisClient,
    *,
    timeout: float | None,
    owns_client: bool,
    instrumentation: Instrumentation | None,
) -> tuple[RedisClient, bool] | None:
    """Return the Redis client `backend` names and whether its user must close it.

    Args:
        backend: A URL, a parsed configuration or a `RedisClient`.
        timeout: The primitive's per-command timeout, already checked; `None`
            keeps the URL's (or the client's) own.
        owns_client: For a given client: closing the returned one closes it too.
        instrumentation: Where a client built here sends its metrics.

    Returns:
        `(client, closes)`, or `None` for `memory://`. A given client comes back
        as is, or as a `with_timeout` view when `timeout` differs from its own.
    """
    if not isinstance(backend, str | MemoryConfig | RedisConfig | RedisClusterConfig):
        if timeout is None or timeout == backend.config.timeout:
            return backend, owns_client
        return backend.with_timeout(timeout, close_parent=owns_client), True
    config = parse_backend_url(backend) if isinstance(backend, str) else backend
    if isinstance(config, MemoryConfig):
        return None
    from scalepy.backends.redis import RedisClient  # the redis extra, only when asked for

    if timeout is not None:
        config = replace(config, timeout=timeout)
    return RedisClient(config, instrumentation=instrumentation), True


def resolve_store(
    backend: str | BackendConfig | RedisClient | S,
    *,
    memory: Callable[[], S],
    redis: Callable[[RedisClient, bool], S],
    protocol: type,
    namespace: str | None,
    timeout: float | None,
    owns_client: bool,
    instrumentation: Instrumentation | None,
) -> tuple[S, bool]:
    """Return the store `backend` names, and whether the primitive closes it.

    Args:
        backend: See the module docstring.
        memory: Builds the in-process store.
        redis: Builds the Redis store on a client; the flag tells the store to
            close that client (a client built here, or one given with `owns_client`).
        protocol: The primitive's store protocol (runtime-checkable): a store
            object given as `backend` must satisfy it.
        namespace: Checked with `check_namespace`; `None` for a primitive without one.
        timeout: The primitive's per-command timeout, checked whatever the
            backend; `None` keeps the URL's (or the client's) own. A given client
            is used through a `with_timeout` view when it differs from its own.
        owns_client: For a given client: the store closes it.
        instrumentation: Where a client built here sends its metrics.

    Returns:
        `(store, owned)`: a store object given as `backend` is not owned.

    Raises:
        InvalidBackendURL: The URL cannot be parsed.
        ConfigurationError: A bad namespace or timeout, or a `backend` that is none
            of the above (a redis-py client, say).
    """
    if namespace is not None:
        check_namespace(namespace)
    if timeout is not None:
        check_finite("timeout", timeout)
    if not (
        isinstance(backend, str | MemoryConfig | RedisConfig | RedisClusterConfig)
        or _is_redis_client(backend)
    ):
        if not isinstance(backend, protocol):
            raise ConfigurationError(_not_a_backend(backend, protocol))
        return backend, False
    client = _client(
        backend, timeout=timeout, owns_client=owns_client, instrumentation=instrumentation
    )
    if client is None:
        return memory(), True
    return redis(*client), True


def _not_a_backend(backend: object, protocol: type) -> str:
    kind = type(backend)
    given = f"{kind.__module__}.{kind.__qualname__}"
    hint = (
        ": for a redis-py client give its URL instead, or share one scalepy "
        "RedisClient.from_url(url) between the primitives"
        if kind.__module__.partition(".")[0] == "redis"
        else none_hint(backend)
    )
    return (
        f"backend must be a URL ('memory://', 'redis://host:6379/0', ...), a scalepy "
        f"RedisClient or a {protocol.__name__}, got a {given}{hint}"
    )


def _is_redis_client(value: object) -> TypeIs[RedisClient]:
    # Not imported to check: a RedisClient exists only once its module has loaded,
    # and importing it would need the redis extra.
    module = sys.modules.get("scalepy.backends.redis._client")
    return module is not None and isinstance(value, module.RedisClient)
