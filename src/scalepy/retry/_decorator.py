"""`@retry` and `call`: a `RetryPolicy` applied to sync and async callables."""

from __future__ import annotations

import functools
import inspect
import time
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast, overload

from scalepy._callables import is_async_callable
from scalepy.errors import ConfigurationError
from scalepy.retry._policy import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from scalepy.clock import Clock
    from scalepy.retry._budget import RetryBudget
    from scalepy.telemetry import Instrumentation

__all__ = ("call", "retry")

P = ParamSpec("P")
R = TypeVar("R")


@overload
def retry(policy: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def retry(
    policy: RetryPolicy | None = None,
    /,
    *,
    budget: RetryBudget | None = None,
    clock: Clock | None = None,
    sleep: Callable[[float], None] = time.sleep,
    instrumentation: Instrumentation | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def retry(
    policy: RetryPolicy | Callable[..., Any] | None = None,
    /,
    *,
    budget: RetryBudget | None = None,
    clock: Clock | None = None,
    sleep: Callable[[float], None] = time.sleep,
    instrumentation: Instrumentation | None = None,
) -> Any:
    """Retry an async or sync function under a policy, keeping its signature.

    Use it bare (`@retry`, the default `RetryPolicy()`) or configured
    (`@retry(policy, budget=budget)`). Async functions wait with `clock.sleep()`;
    sync functions with `sleep`.

    Args:
        policy: The policy; `RetryPolicy()` if `None`.
        budget: A budget shared with other calls, or `None` for no budget.
        clock: Measures the deadline and, for async functions, waits.
        sleep: How sync functions wait between attempts.
        instrumentation: Where attempts are counted; the process default if `None`.

    Returns:
        The decorated function, or a decorator when called with options.

    Raises:
        ConfigurationError: `policy` is neither a `RetryPolicy` nor the function.
    """
    if callable(policy):
        return _decorate(policy, RetryPolicy(), budget, clock, sleep, instrumentation)
    _check_policy("retry", policy)

    def decorator(func: Callable[P, R]) -> Callable[P, R]:
        return _decorate(func, policy or RetryPolicy(), budget, clock, sleep, instrumentation)

    return decorator


def _decorate(
    func: Callable[P, R],
    policy: RetryPolicy,
    budget: RetryBudget | None,
    clock: Clock | None,
    sleep: Callable[[float], None],
    instrumentation: Instrumentation | None,
) -> Callable[P, R]:
    if is_async_callable(func):
        retrying = policy.as_tenacity(budget=budget, clock=clock, instrumentation=instrumentation)
        async_func = cast("Callable[P, Awaitable[Any]]", func)

        @functools.wraps(func)
        async def retried_async(*args: P.args, **kwargs: P.kwargs) -> Any:
            # A copy per call, as tenacity's own decorator does: no state shared between calls.
            return await retrying.copy()(async_func, *args, **kwargs)

        return cast("Callable[P, R]", retried_async)

    retrying_sync = policy.as_tenacity_sync(
        budget=budget, clock=clock, sleep=sleep, instrumentation=instrumentation
    )

    @functools.wraps(func)
    def retried(*args: P.args, **kwargs: P.kwargs) -> R:
        return retrying_sync.copy()(func, *args, **kwargs)

    return retried


async def call(
    func: Callable[[], Awaitable[R]],
    /,
    policy: RetryPolicy | None = None,
    *,
    budget: RetryBudget | None = None,
    clock: Clock | None = None,
    instrumentation: Instrumentation | None = None,
) -> R:
    """Await `func()` under a policy, calling it again for each retry.

    ```python
    body = await call(lambda: client.get(url), POLICY, budget=BUDGET)
    ```

    Args:
        func: Makes one attempt; called anew for every attempt.
        policy: The policy; `RetryPolicy()` if `None`.
        budget: A budget shared with other calls, or `None` for no budget.
        clock: Measures the deadline and waits between attempts.
        instrumentation: Where attempts are counted; the process default if `None`.

    Returns:
        What the first successful attempt returned.

    Raises:
        ConfigurationError: `func` is not callable (a coroutine, say), or `policy`
            is not a `RetryPolicy`.
        Exception: The last attempt's own error, once retrying stops.
    """
    given: object = func  # checked as given, whatever the annotation says
    if not callable(given):
        if inspect.iscoroutine(given):
            given.close()  # never awaited, and never will be: no "never awaited" warning
        raise ConfigurationError(
            f"call() takes a function that makes one attempt, e.g. "
            f"call(lambda: fetch(url)), got {given!r}: a coroutine can be awaited only once"
        )
    _check_policy("call", policy)
    retrying = (policy or RetryPolicy()).as_tenacity(
        budget=budget, clock=clock, instrumentation=instrumentation
    )

    async def attempt() -> R:
        # A coroutine function, so tenacity awaits each attempt (a lambda would not be).
        return await func()

    result: R = await retrying(attempt)
    return result


def _check_policy(user: str, policy: object) -> None:
    """Refuse a policy that is not a `RetryPolicy`, such as `@retry(3)`."""
    if policy is not None and not isinstance(policy, RetryPolicy):
        raise ConfigurationError(
            f"{user}() takes a RetryPolicy, got {policy!r}: "
            f"e.g. @retry(RetryPolicy(attempts=3)), or @retry for the default policy"
        )
