"""One pooled connection: the asyncpg connection, its ages, and who holds it.

Also how a connection is opened (driver errors become scalepy errors here, at the
boundary) and how an acquire site is captured for leak warnings.
"""

from __future__ import annotations

import itertools
import os
import sys
import traceback
from typing import TYPE_CHECKING, TypeAlias

import asyncpg

from scalepy.backends._masking import redact
from scalepy.errors import BackendError, BackendTimeout, BackendUnavailable, InvalidBackendURL

if TYPE_CHECKING:
    import asyncio

    from scalepy.pools._config import PoolOptions

__all__ = ("Connection", "Pooled", "capture_stack", "describe_holder", "open_connection")

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"
"""What the pools lend: a plain asyncpg connection."""

# The server refused us for a reason retrying will not fix: credentials, database
# name, permissions. Everything else (refused, reset, starting up, too many
# connections) may pass, so it is `BackendUnavailable` and start-up retries it.
_PERMANENT = (
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.InsufficientPrivilegeError,
)
_STACK_LIMIT = 16
_PACKAGE = os.path.dirname(__file__) + os.sep
_ASYNCPG_CACHE_SIZE = 100  # asyncpg's own default


class Pooled:
    """A connection the pool owns, with what the pool needs to know about it.

    Attributes:
        connection: The asyncpg connection.
        expires_at: When it must be replaced (its jittered maximum lifetime).
        idle_since: When it last went idle.
        leased_at: When it was last lent.
        task: The task that holds it (leak detection only).
        stack: Where it was acquired (`leak_trace` only).
        warned: Whether this lease was already reported as a leak.
    """

    __slots__ = ("connection", "expires_at", "idle_since", "leased_at", "stack", "task", "warned")

    def __init__(self, connection: Connection, *, created_at: float, expires_at: float) -> None:
        self.connection = connection
        self.expires_at = expires_at
        self.idle_since = created_at
        self.leased_at = created_at
        self.task: asyncio.Task[object] | None = None
        self.stack: traceback.StackSummary | None = None
        self.warned = False


async def open_connection(
    dsn: str, options: PoolOptions, *, limit: float, backend: str
) -> Connection:
    """Open one connection, mapping driver errors to scalepy errors.

    Args:
        dsn: Where to connect.
        options: The pool's options (statement cache, command timeout, settings).
        limit: Seconds allowed for the whole connection set-up.
        backend: The DSN with its password masked, for error messages.

    Returns:
        The open connection.

    Raises:
        BackendTimeout: The server did not complete the set-up in time.
        BackendUnavailable: The server cannot be reached or refused us for now.
        BackendError: The server refused us for good (credentials, database, rights).
        InvalidBackendURL: The driver refused an option of the DSN (e.g. `sslmode`).
    """
    settings = dict(options.server_settings)
    if options.application_name is not None:
        settings["application_name"] = options.application_name
    cache = options.statement_cache_size
    if cache is None:
        cache = 0 if options.pgbouncer else _ASYNCPG_CACHE_SIZE
    try:
        connection: Connection = await asyncpg.connect(
            dsn,
            timeout=limit,
            statement_cache_size=cache,
            command_timeout=options.command_timeout,
            server_settings=settings or None,
        )
    except TimeoutError as exc:
        raise BackendTimeout(f"no connection within {limit:.3f} s", backend=backend) from exc
    except asyncpg.ClientConfigurationError as exc:  # a DSN option refused before connecting
        raise InvalidBackendURL(backend, redact(str(exc))) from exc
    except _PERMANENT as exc:
        raise BackendError(
            f"the server refused the connection: {redact(str(exc))}", backend=backend
        ) from exc
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise BackendUnavailable(f"cannot connect: {redact(str(exc))}", backend=backend) from exc
    return connection


def capture_stack() -> traceback.StackSummary:
    """Return the stack of the code that called into the pools, innermost frame first.

    The pools' own frames are left out, and no source line is read: that waits
    until a leak is reported.
    """
    frames = itertools.dropwhile(
        lambda entry: entry[0].f_code.co_filename.startswith(_PACKAGE),
        traceback.walk_stack(sys._getframe(1)),
    )
    return traceback.StackSummary.extract(frames, limit=_STACK_LIMIT, lookup_lines=False)


def describe_holder(pooled: Pooled) -> str:
    """Say which task holds a connection and, if captured, where it acquired it."""
    task = pooled.task
    holder = "an unknown task" if task is None else f"task {task.get_name()!r}"
    if task is not None and task.done():
        holder += " (finished without returning it)"
    if pooled.stack is None:
        return holder + "; set PoolOptions(leak_trace=True) to see where it was acquired"
    frames = list(reversed(pooled.stack))  # outermost first, as tracebacks read
    return holder + ", acquired at:\n" + "".join(traceback.format_list(frames)).rstrip()
