"""Retry policies built on tenacity: exponential backoff with full jitter and a retry budget.

```python
from scalepy.retry import RetryBudget, RetryPolicy, retry

POLICY = RetryPolicy(attempts=4, deadline=2.0, retry_on=(ConnectionError, TimeoutError))
BUDGET = RetryBudget(ratio=0.2)  # shared by every call to the same dependency


@retry(POLICY, budget=BUDGET)
async def fetch(url: str) -> bytes: ...
```

**Backoff.** The wait before retry `n` (0 for the first retry) is AWS's "full
jitter": `uniform(0, min(max_backoff, initial_backoff * multiplier**n))`.

**Retry budget.** Under an outage every call fails, so per-call retry limits
still multiply the load on the failing dependency by `attempts`. A `RetryBudget`
shared by many calls caps the total instead: each call deposits `ratio` tokens,
each retry withdraws one, and a call whose retry finds the budget empty raises
its original error at once. Over any `window`, retries are at most
`ratio * calls + min_retries_per_second * window`.

**Rejections are not retried.** `CircuitOpenError`, `BulkheadFull`,
`RateLimitExceeded` and `RequestShed` mean "a protection said no"; retrying them only adds load to
the thing being protected, so they are retried only when `retry_on` names their
class explicitly. Cancellation and other `BaseException`s are never retried.

**Composition with the circuit breaker.** Put the retry *outside* the breaker:

```python
@retry(POLICY, budget=BUDGET)  # outer: decides whether to try again
@breaker  # inner: decides whether each attempt may run at all
async def fetch(url: str) -> bytes: ...
```

so that every attempt is decided (and counted) by the breaker, and once the
breaker opens, its `CircuitOpenError` is not retried and stops the retries at
once. The other order would hide failed attempts from the breaker and keep
retrying against a dependency the breaker already knows is down.

The final error is always the last attempt's own exception (tenacity's
`reraise=True`), never `tenacity.RetryError`. Time is read from a `Clock` and
waits use its `sleep()`, so tests with `scalepy.testing.FakeClock` run instantly.

Telemetry: `scalepy.retry.attempts` counts attempts by `outcome`: `success`,
`retry` (failed and will be retried), `exhausted` (failed; attempts or deadline
used up), `budget_exhausted` (failed; the budget refused the retry) and
`failure` (failed with an error that is not retried).

This module needs the `retry` extra: `pip install 'scalepy-toolkit[retry]'`.
"""

from scalepy._extras import missing_extra

try:
    import tenacity  # noqa: F401 - fail here, with an install hint, not deep inside
except ImportError as exc:  # pragma: no cover - exercised by the missing-extra test
    raise missing_extra(__name__, "retry") from exc

from scalepy.retry._budget import RetryBudget as RetryBudget
from scalepy.retry._budget import RetryBudgetStatistics as RetryBudgetStatistics
from scalepy.retry._decorator import call as call
from scalepy.retry._decorator import retry as retry
from scalepy.retry._metrics import ATTEMPTS as ATTEMPTS
from scalepy.retry._policy import RetryPolicy as RetryPolicy
from scalepy.retry._policy import TenacityKwargs as TenacityKwargs

__all__ = (
    "ATTEMPTS",
    "RetryBudget",
    "RetryBudgetStatistics",
    "RetryPolicy",
    "TenacityKwargs",
    "call",
    "retry",
)
