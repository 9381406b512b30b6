"""Pool configuration: `PoolOptions` (how a pool behaves) and `PostgresConfig` (one server).

Both are small, frozen and validated when built, so a bad value fails at start-up
with a message saying what is allowed, never on the first request.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import quote, unquote

from scalepy._validation import check_finite, check_int
from scalepy.backends._masking import mask_url
from scalepy.backends._url import split_host, split_userinfo
from scalepy.errors import ConfigurationError, InvalidBackendURL

__all__ = ("PoolOptions", "PostgresConfig", "mask_dsn")

_SCHEMES = ("postgresql", "postgres")
_POSTGRES_PORT = 5432


def mask_dsn(dsn: str) -> str:
    """Return a PostgreSQL DSN with its password replaced by `***`, safe for logs.

    The same as `scalepy.backends.mask_url`: the user info (`postgresql://app:***@db/app`,
    whatever the password holds), secret query parameters (`?password=`,
    `&sslpassword=`) and keyword DSNs (`host=db password='a b'`) are masked.

    Args:
        dsn: A `postgresql://` or `postgres://` URL, or whatever was given as one.

    Returns:
        The DSN with every password masked; unchanged if it holds none.
    """
    return mask_url(dsn)


def _check_dsn(dsn: object) -> str:
    """`dsn` checked, with its user info percent-encoded as asyncpg expects.

    A raw `/`, `?`, `#` or `@` in the password would make asyncpg read part of it
    as the host or port (and quote it in a bare `ValueError`); encoded, it is
    read whole.

    Raises:
        ConfigurationError: `dsn` is not a string.
        InvalidBackendURL: Not a `postgresql://` URL, or a malformed host or port.
    """
    if not isinstance(dsn, str):
        raise ConfigurationError(f"a PostgreSQL DSN must be a string, got {type(dsn).__name__}")
    scheme, sep, rest = dsn.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise InvalidBackendURL(
            mask_dsn(dsn),
            "a PostgreSQL DSN starts with postgresql:// or postgres://, "
            "e.g. postgresql://app:secret@127.0.0.1:5432/app",
        )
    userinfo, location = split_userinfo(rest)
    hosts = re.split(r"[/?#]", location, maxsplit=1)[0]
    try:
        for host in filter(None, hosts.split(",")):  # no host: a Unix socket or PGHOST
            split_host(host, _POSTGRES_PORT)
    except ValueError as exc:
        raise InvalidBackendURL(mask_dsn(dsn), str(exc)) from None
    if not userinfo:
        return dsn
    user, colon, password = userinfo.partition(":")
    encoded = quote(unquote(user), safe="") + colon + quote(unquote(password), safe="")
    return f"{scheme}://{encoded}@{location}"


def _check_optional(name: str, value: float | None, *, minimum: float = 0) -> None:
    if value is not None:
        check_finite(name, value, minimum=minimum, inclusive=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolOptions:
    """How one PostgreSQL pool behaves; shared by a primary and its replicas unless overridden.

    Raises:
        ConfigurationError: If a field holds a value that is not allowed; the
            message says what is.
    """

    min_size: int = 1
    """Connections opened at start-up and kept open while idle (>= 0)."""
    max_size: int = 10
    """Most connections the pool opens at once (>= 1 and >= `min_size`)."""
    acquire_timeout: float = 5.0
    """Seconds `acquire()` may wait for a connection before `PoolTimeoutError`.

    Mandatory and finite: a pool that waits forever turns an overloaded or
    unreachable database into requests that never end.
    """
    connect_timeout: float = 2.0
    """Seconds allowed to open a connection, and for the pool's own round trips on
    it (the validation query and the reset on release).

    Keep it below `acquire_timeout`, so that a replica that does not answer
    leaves time to fall back to the primary.
    """
    command_timeout: float | None = None
    """Default seconds per query on lent connections (asyncpg's `command_timeout`);
    `None` leaves queries unbounded unless they pass their own `timeout`."""
    max_lifetime: float | None = 3600.0
    """Seconds after which a connection is closed and replaced, whether busy or
    idle (it is closed when next returned or found idle); `None` never."""
    lifetime_jitter: float = 0.1
    """Fraction of `max_lifetime` taken off at random per connection, in [0, 1).

    Each connection lives a uniformly random time between
    `max_lifetime * (1 - lifetime_jitter)` and `max_lifetime`, so connections
    opened together are not all replaced together, and none outlives `max_lifetime`.
    """
    max_idle: float | None = 300.0
    """Seconds an idle connection beyond `min_size` stays open; `None` keeps it."""
    validate_after_idle: float | None = 5.0
    """Before lending a connection idle for at least this many seconds, check it
    with `SELECT 1` and replace it if dead; 0 checks every time, `None` never."""
    leak_threshold: float | None = 60.0
    """Seconds a lent connection may be held before a warning is logged (once per
    lease, naming the task that holds it); `None` disables the check."""
    leak_trace: bool = False
    """Also capture the stack of every `acquire()` call, to show in the leak
    warning where the connection was taken; costs a few microseconds per acquire."""
    pgbouncer: bool = False
    """PgBouncer transaction (or statement) pooling in front of the server: no
    statement cache (asyncpg's `statement_cache_size=0`), and no session reset on
    release (`RESET ALL` would run on whichever server connection PgBouncer picks);
    a connection returned inside a transaction is closed instead."""
    session_reset: bool = True
    """Reset the session when a connection is returned (asyncpg's `reset()`: settings,
    `LISTEN`s, cursors and advisory locks cleared), which costs a round trip per lease.

    `False` skips it when the block ended without an error and outside a transaction,
    as psycopg's pool does: for code that changes no session state (no `SET`, `LISTEN`,
    advisory lock, `WITH HOLD` cursor, temporary table or `add_listener`), whose
    connections are as clean when returned as when lent. A block that raised, or left
    a transaction open, still gets the full reset."""
    statement_cache_size: int | None = None
    """asyncpg's prepared statement cache per connection; `None` means asyncpg's
    default (100), or 0 with `pgbouncer`."""
    application_name: str | None = None
    """Shown in `pg_stat_activity.application_name`; `None` leaves the server default."""
    server_settings: Mapping[str, str] = field(default_factory=dict)
    """Session settings sent when each connection opens, e.g. `{"jit": "off"}`."""

    def __post_init__(self) -> None:
        check_int("min_size", self.min_size, minimum=0)
        check_int("max_size", self.max_size)
        if self.min_size > self.max_size:
            raise ConfigurationError(
                f"min_size ({self.min_size}) must not exceed max_size ({self.max_size})"
            )
        check_finite("acquire_timeout", self.acquire_timeout)
        check_finite("connect_timeout", self.connect_timeout)
        _check_optional("command_timeout", self.command_timeout, minimum=math.ulp(0))
        _check_optional("max_lifetime", self.max_lifetime, minimum=math.ulp(0))
        check_finite("lifetime_jitter", self.lifetime_jitter, minimum=0, inclusive=True)
        if self.lifetime_jitter >= 1:
            raise ConfigurationError(
                f"lifetime_jitter must be in [0, 1), got {self.lifetime_jitter!r}"
            )
        _check_optional("max_idle", self.max_idle, minimum=math.ulp(0))
        _check_optional("validate_after_idle", self.validate_after_idle)
        _check_optional("leak_threshold", self.leak_threshold, minimum=math.ulp(0))
        if self.statement_cache_size is not None:
            check_int("statement_cache_size", self.statement_cache_size, minimum=0)
            if self.pgbouncer and self.statement_cache_size:
                raise ConfigurationError(
                    "pgbouncer=True needs statement_cache_size 0 or None: PgBouncer "
                    "transaction pooling breaks cached prepared statements"
                )
        settings: object = self.server_settings
        if not isinstance(settings, Mapping) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in settings.items()
        ):
            raise ConfigurationError(
                f"server_settings must map setting names to string values, got {settings!r}"
            )
        # A read-only copy: the options are frozen, so must be what they hold.
        object.__setattr__(self, "server_settings", MappingProxyType(dict(settings)))


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class PostgresConfig:
    """One PostgreSQL server for a `PoolManager`: its DSN, a name, and optional own options.

    ```python
    PostgresConfig(dsn="postgresql://app@replica-2/app", name="replica-eu",
                   options=PoolOptions(max_size=30))
    ```

    Raises:
        InvalidBackendURL: The DSN is not a `postgresql://` or `postgres://` URL.
        ConfigurationError: The name is empty.
    """

    dsn: str
    """A `postgresql://user:password@host:port/database?option=value` URL, as asyncpg
    accepts it; never shown unmasked."""
    name: str | None = None
    """The pool's name in metrics, statistics and errors; `None` lets the manager
    call it `primary` or `replica-N`."""
    options: PoolOptions | None = None
    """This server's own options; `None` uses the manager's."""

    def __post_init__(self) -> None:
        _check_dsn(self.dsn)
        name: object = self.name  # checked as given, whatever the annotation says
        if name is not None and not (isinstance(name, str) and name):
            raise ConfigurationError(f"name must be a non-empty string or None, got {self.name!r}")

    def __repr__(self) -> str:
        return (
            f"PostgresConfig(dsn={mask_dsn(self.dsn)!r}, name={self.name!r}, "
            f"options={self.options!r})"
        )
