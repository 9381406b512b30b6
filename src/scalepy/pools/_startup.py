"""Start-up: retry what is not reachable yet, with full-jitter backoff, inside one budget."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from scalepy.errors import BackendTimeout, BackendUnavailable
from scalepy.retry import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from scalepy.clock import Clock
    from scalepy.telemetry import Instrumentation

__all__ = ("gather_or_cancel", "start_with_retries")

_FIRST_BACKOFF = 0.1
_MAX_BACKOFF = 2.0


async def start_with_retries(
    attempt: Callable[[], Awaitable[object]],
    *,
    budget: float,
    backend: str,
    clock: Clock,
    instrumentation: Instrumentation,
) -> None:
    """Await `attempt()` until it succeeds, within `budget` seconds in all.

    `BackendUnavailable` (refused, reset, starting up, timed out) is retried after
    a full-jitter backoff of up to 0.1 s, doubling to at most 2 s; other errors,
    such as wrong credentials, fail at once.

    Args:
        attempt: One try, e.g. opening a pool's first connection.
        budget: Seconds for every try and wait together.
        backend: What is being reached, password masked, for the error.
        clock: Times the backoff.
        instrumentation: Where the attempts are counted (`scalepy.retry.attempts`).

    Raises:
        BackendTimeout: The budget ran out; the last attempt's error is its cause.
        BackendError: An attempt failed in a way retrying cannot fix, or the last
            retry failed just before the budget ran out.
    """
    policy = RetryPolicy(
        attempts=None,
        deadline=budget,
        initial_backoff=_FIRST_BACKOFF,
        max_backoff=_MAX_BACKOFF,
        retry_on=(BackendUnavailable,),
    )
    retrying = policy.as_tenacity(clock=clock, instrumentation=instrumentation)
    failures: list[Exception] = []

    async def tracked() -> None:
        try:
            await attempt()
        except Exception as exc:
            failures.append(exc)
            raise

    deadline = asyncio.timeout(budget)
    try:
        async with deadline:
            await retrying(tracked)
    except BackendUnavailable as exc:  # retried until no retry fitted in the budget
        raise _out_of_budget(budget, backend, failures) from exc
    except TimeoutError as exc:  # the budget ran out during an attempt or a wait
        if not deadline.expired():
            raise
        raise _out_of_budget(budget, backend, failures) from (failures[-1] if failures else exc)


def _out_of_budget(budget: float, backend: str, failures: list[Exception]) -> BackendTimeout:
    last = f"; last: {failures[-1]}" if failures else ""
    return BackendTimeout(
        f"not reachable within the start-up budget of {budget:g} s "
        f"({len(failures)} failed attempt(s){last})",
        backend=backend,
    )


async def gather_or_cancel(*awaitables: Awaitable[object]) -> None:
    """Await all concurrently; when one fails, cancel the others, wait for them, and raise.

    Args:
        *awaitables: What to run.
    """
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    if not tasks:
        return
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        raise
