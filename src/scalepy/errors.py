"""Every error scalepy raises, rooted at `ScalepyError`.

Each error mixes in the nearest builtin, so callers that already catch
`ValueError`, `ConnectionError` or `TimeoutError` keep working, and carries the
data a caller needs to react (which backend, which URL field, ...).

```
ScalepyError
├── ConfigurationError (ValueError)
│   └── InvalidBackendURL
├── UsageError (TypeError)
│   └── NoWorkerState (also LookupError)
├── BackendError
│   ├── BackendUnavailable (ConnectionError)
│   │   └── BackendTimeout (TimeoutError)
│   └── BackendCommandError
├── SerializationError (ValueError)
│   └── SignatureError
├── RateLimitExceeded
│   └── CostExceedsBurst (ValueError)
├── CircuitOpenError
├── BulkheadFull
├── RequestShed
├── ResourceClosedError (RuntimeError)
├── PoolError
│   ├── PoolTimeoutError (TimeoutError)
│   ├── PoolNotOpenError (RuntimeError)
│   └── PoolClosedError (also ResourceClosedError)
└── QueueError
    ├── JobFailed
    ├── JobCancelled
    ├── JobNotFound (LookupError)
    └── ResultTimeout (TimeoutError)
```

Primitives add their own families beside these (rate limiting, circuit breaking,
pools, queues), always below `ScalepyError`.
"""

from __future__ import annotations

import math

__all__ = (
    "BackendCommandError",
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "BulkheadFull",
    "CircuitOpenError",
    "ConfigurationError",
    "CostExceedsBurst",
    "InvalidBackendURL",
    "JobCancelled",
    "JobFailed",
    "JobNotFound",
    "NoWorkerState",
    "PoolClosedError",
    "PoolError",
    "PoolNotOpenError",
    "PoolTimeoutError",
    "QueueError",
    "RateLimitExceeded",
    "RequestShed",
    "ResourceClosedError",
    "ResultTimeout",
    "ScalepyError",
    "SerializationError",
    "SignatureError",
    "UsageError",
)


class ScalepyError(Exception):
    """Base class of every error raised by scalepy."""


class ConfigurationError(ScalepyError, ValueError):
    """An option given to a scalepy object is invalid; the message says what is allowed."""


class InvalidBackendURL(ConfigurationError):
    """A backend URL could not be parsed.

    Attributes:
        url: The offending URL with any password replaced by `***`.
        reason: What is wrong with it and what is accepted instead.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"invalid backend URL {url!r}: {reason}")


class UsageError(ScalepyError, TypeError):
    """A scalepy object was used the wrong way, e.g. `with` where `async with` is needed.

    Raised where Python would raise a bare `TypeError` or `AttributeError` far from
    the mistake; the message shows the right way.
    """


class NoWorkerState(UsageError, LookupError):
    """`worker_state()` was called where no worker `startup` hook left a state.

    A `LookupError` too, as the lookup it wraps: outside a task, in a task run by a
    worker without `startup=`, or in a task function called directly (in a test).
    """


class BackendError(ScalepyError):
    """A storage backend (Redis, PostgreSQL) failed to serve a request.

    Attributes:
        message: What went wrong, without the backend.
        backend: A short description of the backend, e.g. `redis://127.0.0.1:6379/0`.
    """

    def __init__(self, message: str, *, backend: str) -> None:
        self.message = message
        self.backend = backend
        super().__init__(f"{message} [{backend}]")


class BackendUnavailable(BackendError, ConnectionError):
    """The backend cannot be reached: connection refused, reset or closed."""


class BackendTimeout(BackendUnavailable, TimeoutError):
    """The backend did not answer within the configured timeout."""


class BackendCommandError(BackendError):
    """The backend answered with an error (a bad command, a script error, wrong type)."""


class SerializationError(ScalepyError, ValueError):
    """A value could not be encoded, or stored bytes could not be decoded."""


class SignatureError(SerializationError):
    """Signed data was unsigned, signed with an unknown key, or tampered with."""


class RateLimitExceeded(ScalepyError):
    """A rate limit denied the call.

    Attributes:
        key: The rate-limited identity, e.g. `"client:1.2.3.4"`.
        retry_after: Seconds until the same call would be allowed.
    """

    def __init__(self, key: str, retry_after: float) -> None:
        super().__init__(key, retry_after)
        self.key = key
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"rate limit exceeded for {self.key!r}; retry after {self.retry_after:.3f} s"


class CostExceedsBurst(RateLimitExceeded, ValueError):
    """A request costs more than a policy allows at once: no wait will ever let it through.

    A `RateLimitExceeded` whose `retry_after` is infinite, so handlers of denials
    answer it too (the rate-limit middleware answers `413`), and a `ValueError`,
    as it was refused before any quota was read.

    Attributes:
        key: The rate-limited identity.
        cost: What the request costs.
        burst: The most the strictest policy allows at once.
    """

    def __init__(self, key: str, cost: int, burst: int) -> None:
        super().__init__(key, math.inf)
        self.args = (key, cost, burst)
        self.cost = cost
        self.burst = burst

    def __str__(self) -> str:
        return (
            f"a request of cost {self.cost} for {self.key!r} can never be allowed: "
            f"the strictest policy allows at most {self.burst} at once"
        )


class CircuitOpenError(ScalepyError):
    """A circuit breaker rejected the call without running it.

    Attributes:
        name: The breaker's name, e.g. `"postgres"`.
        retry_after: Seconds until the breaker lets a trial call through (0 when it
            rejected because its half-open trial calls were all taken, or it is
            forced open).
    """

    def __init__(self, name: str, retry_after: float) -> None:
        # The message is formatted only when shown: rejections must stay cheap.
        super().__init__(name, retry_after)
        self.name = name
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"circuit breaker {self.name!r} is open; retry after {self.retry_after:.3f} s"


class BulkheadFull(ScalepyError):
    """A bulkhead had no free slot within its maximum wait.

    Attributes:
        name: The bulkhead's name.
        max_concurrent: How many calls it runs at once.
    """

    def __init__(self, name: str, max_concurrent: int) -> None:
        super().__init__(name, max_concurrent)
        self.name = name
        self.max_concurrent = max_concurrent

    def __str__(self) -> str:
        return f"bulkhead {self.name!r} is full ({self.max_concurrent} calls running)"


class RequestShed(ScalepyError):
    """A load shedder turned the call away: the process is over its concurrency limit.

    Attributes:
        name: The shedder's name.
        priority: The call's priority class, e.g. `"normal"`.
        reason: Why: `"queue_full"` (no room to wait), `"evicted"` (a more important
            call took its place in line), `"timeout"` (no slot within the maximum
            wait) or `"stale"` (it waited longer than the overload target).
        retry_after: Seconds after which a retry may be served, an estimate.
    """

    def __init__(self, name: str, priority: str, reason: str, retry_after: float) -> None:
        # The message is formatted only when shown: shedding must stay cheap.
        super().__init__(name, priority, reason, retry_after)
        self.name = name
        self.priority = priority
        self.reason = reason
        self.retry_after = retry_after

    def __str__(self) -> str:
        return (
            f"load shedder {self.name!r} shed a {self.priority} call ({self.reason}); "
            f"retry after {self.retry_after:.3f} s"
        )


class ResourceClosedError(ScalepyError, RuntimeError):
    """The object was closed with `aclose()`; it does not reopen, build a new one.

    Attributes:
        resource: What was closed, e.g. `"Cache"`.
    """

    def __init__(self, resource: str) -> None:
        super().__init__(resource)
        self.resource = resource

    def __str__(self) -> str:
        return f"{self.resource} is closed; it does not reopen, build a new one"


class PoolError(ScalepyError):
    """A connection pool could not hand out a connection.

    Attributes:
        pool: The pool's name, e.g. `"primary"` or `"replica-1"`.
    """

    def __init__(self, pool: str) -> None:
        super().__init__(pool)
        self.pool = pool


class PoolTimeoutError(PoolError, TimeoutError):
    """No connection became free within the pool's acquire deadline.

    Attributes:
        pool: The pool's name.
        timeout: The deadline that expired, in seconds.
    """

    def __init__(self, pool: str, timeout: float) -> None:
        super().__init__(pool)
        self.args = (pool, timeout)
        self.timeout = timeout

    def __str__(self) -> str:
        return f"no connection from pool {self.pool!r} within {self.timeout:.3f} s"


class PoolNotOpenError(PoolError, RuntimeError):
    """The pool was never opened: open it (or its `PoolManager`) before acquiring."""

    def __str__(self) -> str:
        return (
            f"pool {self.pool!r} is not open yet: call `await pools.open()` first, "
            f"or use `async with pools:` or the app's lifespan (`lifespan=pools.lifespan`)"
        )


class PoolClosedError(PoolError, ResourceClosedError):
    """The pool is closing or closed and refuses new acquires."""

    def __str__(self) -> str:
        return f"pool {self.pool!r} is closed"


class QueueError(ScalepyError):
    """A task-queue job could not give what was asked of it.

    Attributes:
        job_id: The job's id.
    """

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


class JobFailed(QueueError):
    """The job failed on its last attempt and went to the dead-letter set.

    Attributes:
        job_id: The job's id.
        error: The last attempt's error as the worker recorded it: `Type: message`
            on the first line, then the traceback.
    """

    def __init__(self, job_id: str, error: str) -> None:
        super().__init__(job_id)
        self.args = (job_id, error)
        self.error = error

    def __str__(self) -> str:
        return f"job {self.job_id!r} failed: {self.error.partition(chr(10))[0]}"


class JobCancelled(QueueError):
    """The job was cancelled before it completed."""

    def __str__(self) -> str:
        return f"job {self.job_id!r} was cancelled"


class JobNotFound(QueueError, LookupError):
    """No such job: the id is unknown, or the job ended and was deleted since.

    An ended job is deleted when its result TTL runs out (completed, cancelled),
    when its `dead_ttl` runs out, or when it is purged (dead).
    """

    def __str__(self) -> str:
        return f"no job {self.job_id!r} (unknown id, or it ended and was deleted since)"


class ResultTimeout(QueueError, TimeoutError):
    """The job did not finish within the time the caller waited for its result.

    Attributes:
        job_id: The job's id.
        timeout: The wait that expired, in seconds.
    """

    def __init__(self, job_id: str, timeout: float) -> None:
        super().__init__(job_id)
        self.args = (job_id, timeout)
        self.timeout = timeout

    def __str__(self) -> str:
        return f"job {self.job_id!r} did not finish within {self.timeout:.3f} s"
