"""The todos in PostgreSQL: SQL, cached reads, invalidation after commit, breaker and retries.

Who does what, in call order:

1. **Cache** (`scalepy.cache`): a read by id or a list page is answered from the
   process's L1 or from Redis when it can; only a miss reaches the database.
2. **Retry** (`scalepy.retry`): a read that fails on a transient error (a dropped
   connection, a timeout) is tried again, with backoff and jitter, within a budget
   shared by every read so that retries never multiply the load of an outage.
   Writes are not retried: an INSERT whose answer was lost may have happened.
3. **Breaker** (`scalepy.breaker`): every attempt goes through the PostgreSQL breaker.
   When too many fail, it opens (on every replica: its state is shared through
   Redis) and calls fail at once with `CircuitOpenError` instead of waiting on a
   database that is down; the app answers them 503 with `Retry-After`.
4. **SQL** (asyncpg, through the `PoolManager`'s pool), on the primary: a replica
   that lags could hand the cache a value older than a write it just invalidated.

A created todo's notification is written in the same statement, to the outbox
(`todo/outbox.py`), never sent to Redis from the request: it cannot be lost. Creates
arriving while earlier ones wait for a connection are written in one statement.

A write commits, then invalidates the cache tags it touched. After the invalidation
returns, no process reads the old value from Redis again (the tag versions are read
with every entry) and every process's L1 has been sent the invalidation, which it
applies as soon as its event loop reads it (an L1 entry is never served more than the
cache's `staleness_bound` after that): a read after a write, on any replica, sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING

import asyncpg

from scalepy.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    PoolError,
    ScalepyError,
)
from scalepy.retry import retry
from todo.models import TodoRecord
from todo.outage import OutageLog

if TYPE_CHECKING:
    from collections.abc import Iterator

    from scalepy.breaker import CircuitBreaker
    from scalepy.cache import Cache
    from scalepy.pools import PostgresCluster
    from scalepy.retry import RetryBudget, RetryPolicy
    from scalepy.telemetry import ContextPropagation
    from todo.models import TodoIn, TodoPatch

__all__ = ("UNAVAILABLE", "TodoRepository")

_logger = logging.getLogger("todo.repository")

_DRIVER_UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,  # refused, reset
    TimeoutError,  # asyncpg's command timeout
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # the connection closed under a query
    asyncpg.exceptions.OperatorInterventionError,  # the server is shutting down
    # A pooled connection that read the server's FATAL (a shutdown) but not yet its
    # close: asyncpg refuses every query on it until the close arrives.
    asyncpg.InternalClientError,
)
UNAVAILABLE: tuple[type[Exception], ...] = (*_DRIVER_UNAVAILABLE, PoolError, BackendError)
"""What says PostgreSQL is unreachable (not that a query was wrong): the breaker counts
these as failures and the reads retry them. (`BackendUnavailable` and `PoolTimeoutError`,
what the pool raises, are among them.)"""

_COLUMNS = 'id, title, description, completed, "order", created_at, updated_at'
_EVERY_TODO = "todos:every"  # carried by every by-id entry: DELETE /todos drops them all
_LISTS = "todos:lists"  # carried by every list page: any write drops them


# The creates of a batch, in one statement: the todos and their outbox rows commit
# together. The ids are drawn first, so that each outbox row names its todo, and each
# create gets its own row back (in the order given), whatever order the INSERT takes.
_CREATE = f"""WITH given AS (
        SELECT nextval(pg_get_serial_sequence('todos', 'id')) AS id, todo.*
        FROM unnest($1::text[], $2::text[], $3::boolean[], $4::integer[], $5::text[])
            WITH ORDINALITY AS todo(title, description, completed, "order", trace, n)
    ), todo AS (
        INSERT INTO todos (id, title, description, completed, "order") OVERRIDING SYSTEM VALUE
        SELECT id, title, description, completed, "order" FROM given
        RETURNING {_COLUMNS}
    ), notification AS (
        INSERT INTO notification_outbox (todo_id, trace) SELECT id, trace FROM given
    )
    SELECT todo.* FROM todo JOIN given USING (id) ORDER BY given.n"""


def _todo_tag(todo_id: int) -> str:
    return f"todo:{todo_id}"


def _record(row: asyncpg.Record) -> TodoRecord:
    return TodoRecord(**dict(row))


class _Batch:
    """Creates waiting to be written together, each with the future its caller awaits."""

    __slots__ = ("todos", "waiters")

    def __init__(self) -> None:
        self.todos: list[tuple[TodoIn, str]] = []
        self.waiters: list[asyncio.Future[TodoRecord]] = []

    def columns(self) -> tuple[list[object], ...]:
        """The arguments of `_CREATE`: one array per column."""
        return (
            [todo.title for todo, _ in self.todos],
            [todo.description for todo, _ in self.todos],
            [todo.completed for todo, _ in self.todos],
            [todo.order for todo, _ in self.todos],
            [trace for _, trace in self.todos],
        )

    def fail(self, exc: BaseException) -> None:
        for waiter in self.waiters:
            if waiter.done():  # its caller gave up
                continue
            if isinstance(exc, asyncio.CancelledError):
                waiter.cancel()
            else:
                waiter.set_exception(exc)

    def succeed(self, records: list[TodoRecord]) -> None:
        for waiter, record in zip(self.waiters, records, strict=True):
            if not waiter.done():
                waiter.set_result(record)


class TodoRepository:
    """Reads and writes todos.

    Args:
        postgres: The pools' PostgreSQL cluster.
        cache: Where reads are cached; hits come back as `TodoRecord`s, the return
            annotations of the cached reads.
        breaker: The PostgreSQL breaker, shared by every caller of the database.
        retry_policy: How reads retry transient failures.
        budget: The retry budget shared by every read.
        ttl: Seconds a cached read stays fresh (writes invalidate it sooner).
        propagation: Captures the request's trace context into the outbox row of a
            created todo, so that its notification job continues the trace.
    """

    def __init__(
        self,
        *,
        postgres: PostgresCluster,
        cache: Cache,
        breaker: CircuitBreaker,
        retry_policy: RetryPolicy,
        budget: RetryBudget,
        ttl: float,
        propagation: ContextPropagation | None = None,
    ) -> None:
        self._postgres = postgres
        self._propagation = propagation
        self._cache = cache
        self._breaker = breaker
        self._retrying = retry(retry_policy, budget=budget)
        self._invalidations = OutageLog(_logger, "cache invalidation after a write")
        self._batch: _Batch | None = None  # the creates gathering for the next statement
        self._writing: set[asyncio.Task[None]] = set()

        # --8<-- [start:reads]
        @cache.cached(ttl=ttl, key="todo:{todo_id}", tags=["todo:{todo_id}", _EVERY_TODO])
        async def load_todo(todo_id: int) -> TodoRecord | None:
            row = await self._read(
                f"SELECT {_COLUMNS} FROM todos WHERE id = $1",
                todo_id,
            )
            return None if not row else _record(row[0])

        @cache.cached(ttl=ttl, tags=[_LISTS])
        async def load_page(
            limit: int, after: int | None, completed: bool | None
        ) -> list[TodoRecord]:
            rows = await self._read(
                f"""SELECT {_COLUMNS} FROM todos
                    WHERE ($1::bigint IS NULL OR id > $1)
                      AND ($2::boolean IS NULL OR completed = $2)
                    ORDER BY id LIMIT $3""",
                after,
                completed,
                limit,
            )
            return [_record(row) for row in rows]

        self._load_todo = load_todo
        self._load_page = load_page
        # --8<-- [end:reads]

    async def get(self, todo_id: int) -> TodoRecord | None:
        """The todo with this id, or `None`."""
        return await self._load_todo(todo_id)

    async def page(
        self, *, limit: int, after: int | None = None, completed: bool | None = None
    ) -> list[TodoRecord]:
        """Up to `limit` todos with ids above `after`, by id, optionally by completion."""
        return await self._load_page(limit, after, completed)

    # --8<-- [start:create]
    async def create(self, todo: TodoIn) -> TodoRecord:
        """Insert a todo and its notification (in the outbox); return the todo as stored.

        One statement writes both, so both commit or neither: the relay
        (`todo/outbox.py`) enqueues the notification, whenever Redis answers.
        Creates that arrive while the previous ones wait for a connection are
        written together, in one statement and one commit: under load a create
        costs PostgreSQL a share of one, and holds no connection of its own.
        """
        trace = self._propagation.inject_context() if self._propagation is not None else {}
        batch = self._batch
        if batch is None:
            batch = self._batch = _Batch()
            # It runs in this first caller's context: its spans join this request's trace.
            writing = asyncio.get_running_loop().create_task(self._create_batch(batch))
            self._writing.add(writing)
            writing.add_done_callback(self._writing.discard)
        waiter: asyncio.Future[TodoRecord] = asyncio.get_running_loop().create_future()
        batch.todos.append((todo, json.dumps(trace, separators=(",", ":")) if trace else ""))
        batch.waiters.append(waiter)
        return await waiter

    async def _create_batch(self, batch: _Batch) -> None:
        """Write a batch once a connection is free; invalidate; answer its callers."""
        try:
            async with self._breaker:
                with _unavailable_as_scalepy():
                    async with self._postgres.acquire() as connection:
                        self._seal(batch)  # later creates gather for the next statement
                        rows = await connection.fetch(_CREATE, *batch.columns())
            records = [_record(row) for row in rows]
            # Their ids may have been looked up (and their absence cached) before they existed.
            await self._invalidate(*(_todo_tag(record.id) for record in records), _LISTS)
        except BaseException as exc:
            self._seal(batch)
            batch.fail(exc)  # every caller gets what a create alone would have raised
            if not isinstance(exc, Exception):
                raise
            return
        batch.succeed(records)

    def _seal(self, batch: _Batch) -> None:
        if self._batch is batch:
            self._batch = None

    # --8<-- [end:create]

    async def update(self, todo_id: int, patch: TodoPatch) -> TodoRecord | None:
        """Change the fields the patch holds; `None` when there is no such todo."""
        changes = patch.changes()
        if not changes:
            return await self.get(todo_id)
        # Column names come from TodoPatch's fields, never from the request.
        assignments = ", ".join(f'"{name}" = ${n}' for n, name in enumerate(changes, start=2))
        rows = await self._write(
            f"""UPDATE todos SET {assignments}, updated_at = now()
                WHERE id = $1 RETURNING {_COLUMNS}""",
            todo_id,
            *changes.values(),
        )
        if not rows:
            return None
        await self._invalidate(_todo_tag(todo_id), _LISTS)
        return _record(rows[0])

    async def delete(self, todo_id: int) -> bool:
        """Delete one todo; whether it existed."""
        rows = await self._write("DELETE FROM todos WHERE id = $1 RETURNING id", todo_id)
        if rows:
            await self._invalidate(_todo_tag(todo_id), _LISTS)
        return bool(rows)

    async def delete_all(self) -> int:
        """Delete every todo; how many there were."""
        rows = await self._write(
            "WITH gone AS (DELETE FROM todos RETURNING 1) SELECT count(*) AS n FROM gone"
        )
        await self._invalidate(_EVERY_TODO, _LISTS)
        return int(rows[0]["n"])

    # --8<-- [start:calls]
    async def _read(self, query: str, *args: object) -> list[asyncpg.Record]:
        """A read: retried on transient failures, each attempt through the breaker."""
        return await self._retrying(self._guarded)(query, *args)

    async def _write(self, query: str, *args: object) -> list[asyncpg.Record]:
        """A write: through the breaker, never retried.

        Each is one statement, atomic by itself (committed when it returns): an explicit
        transaction would only add a BEGIN and a COMMIT round trip.
        """
        return await self._guarded(query, *args)

    async def _guarded(self, query: str, *args: object) -> list[asyncpg.Record]:
        async with self._breaker:
            return await self._fetch(query, args)

    async def _fetch(self, query: str, args: tuple[object, ...]) -> list[asyncpg.Record]:
        with _unavailable_as_scalepy():
            async with self._postgres.acquire() as connection:
                return await connection.fetch(query, *args)

    async def _invalidate(self, *tags: str) -> None:
        """Drop the cached reads a committed write changed, on every replica."""
        try:
            await self._cache.invalidate_tags(*tags)
        except BackendError as exc:
            # The write is committed; failing the request would not undo it. The
            # entries then live until their TTL at most (TODO_CACHE_TTL).
            self._invalidations.failed(exc, ", ".join(tags))
        else:
            self._invalidations.succeeded()

    # --8<-- [end:calls]


@contextlib.contextmanager
def _unavailable_as_scalepy() -> Iterator[None]:
    """The driver's words for "unreachable" become scalepy's (a 503, not a 500)."""
    try:
        yield
    except ScalepyError:
        raise  # the pool's own errors say it already
    except _DRIVER_UNAVAILABLE as exc:
        error = BackendTimeout if isinstance(exc, TimeoutError) else BackendUnavailable
        raise error(f"{type(exc).__name__}: {exc}", backend="postgresql") from exc
