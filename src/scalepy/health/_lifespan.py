"""The steps around a service's life: open resources; stop consumers and close resources.

Every step keeps going when one item fails (the error is logged on the
`scalepy.health` logger): one pool that cannot close must not keep the others open.
Shutdown steps are bounded: consumers get `stop_timeout` together, each resource
gets `close_timeout`; a resource that does not close in time is abandoned, and
terminated if it has a `terminate()` method (as an `asyncpg.Pool` does).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeAlias

from scalepy._validation import check_finite
from scalepy.errors import ConfigurationError
from scalepy.health._deadline import finished_within

if TYPE_CHECKING:
    from scalepy.clock import Clock

__all__ = (
    "Consumer",
    "close_resources",
    "open_resource",
    "resources_tuple",
    "shutdown_plan",
    "stop_consumers",
)

logger = logging.getLogger("scalepy.health")

Consumer: TypeAlias = Callable[[], object]
"""Stops one consumer (a queue worker, a subscriber); sync, or async and awaited."""


def resources_tuple(resources: Iterable[object]) -> tuple[object, ...]:
    """`resources` as a tuple, each checked to have `aclose()` or `close()`.

    Raises:
        ConfigurationError: One of them has neither.
    """
    checked = tuple(resources)
    for resource in checked:
        if not callable(getattr(resource, "aclose", None)) and not callable(
            getattr(resource, "close", None)
        ):
            raise ConfigurationError(
                f"cannot close {resource!r}: a resource needs an aclose() or close() method"
            )
    return checked


def consumers_tuple(consumers: Iterable[Consumer]) -> tuple[Consumer, ...]:
    """`consumers` as a tuple, each checked to be callable.

    Raises:
        ConfigurationError: One of them is not callable.
    """
    checked = tuple(consumers)
    for consumer in checked:
        if not callable(consumer):
            raise ConfigurationError(
                f"consumers must be callables that stop a consumer, e.g. worker.stop; "
                f"got {consumer!r}"
            )
    return checked


def shutdown_plan(
    consumers: Iterable[Consumer],
    resources: Iterable[object],
    stop_timeout: float,
    close_timeout: float,
) -> tuple[tuple[Consumer, ...], tuple[object, ...]]:
    """The consumers and resources a shutdown stops and closes, checked with its timeouts.

    Raises:
        ConfigurationError: A consumer that is not callable, a resource without
            `aclose()` or `close()`, or a timeout that is not a finite number > 0.
    """
    stoppers = consumers_tuple(consumers)
    closing = resources_tuple(resources)
    check_finite("stop_timeout", stop_timeout)
    check_finite("close_timeout", close_timeout)
    return stoppers, closing


async def open_resource(resource: object) -> None:
    """Call the resource's `open()` if it has one, awaiting it if async."""
    opener = getattr(resource, "open", None)
    if callable(opener):
        result = opener()
        if inspect.isawaitable(result):
            await result


def _abandon(task: asyncio.Future[Any]) -> None:
    """Cancel a late task; its outcome, whenever it comes, is dropped."""
    task.cancel()
    task.add_done_callback(lambda done: None if done.cancelled() else done.exception())


async def _finished_or_abandoned(task: asyncio.Future[Any], seconds: float, clock: Clock) -> bool:
    """Wait up to `seconds` for `task`; abandon it if it is late or the wait is cancelled."""
    try:
        done = await finished_within(task, seconds, clock)
    except BaseException:
        _abandon(task)
        raise
    if not done:
        _abandon(task)
    return done


async def stop_consumers(consumers: Iterable[Consumer], seconds: float, clock: Clock) -> None:
    """Call every consumer's stop callback at once; wait up to `seconds` for all of them."""
    stopping: list[Consumer] = []
    pending: list[asyncio.Future[Any]] = []
    for consumer in consumers:
        try:
            result = consumer()
        except Exception:
            logger.exception("stopping consumer %r failed", consumer)
            continue
        if inspect.isawaitable(result):
            stopping.append(consumer)
            pending.append(asyncio.ensure_future(result))
    if not pending:
        return
    together = asyncio.gather(*pending, return_exceptions=True)
    if not await _finished_or_abandoned(together, seconds, clock):
        logger.warning("consumers did not stop within %g s; cancelled them", seconds)
        return
    for consumer, outcome in zip(stopping, together.result(), strict=True):
        if isinstance(outcome, BaseException):
            logger.error("stopping consumer %r failed", consumer, exc_info=outcome)


async def close_resources(resources: Iterable[object], seconds: float, clock: Clock) -> None:
    """Close each resource in the given order, with `aclose()` or `close()`, `seconds` each."""
    for resource in resources:
        # resources_tuple() made sure one exists; `object` has no static close().
        closer = getattr(resource, "aclose", None) or getattr(resource, "close")  # noqa: B009
        try:
            result = closer()
        except Exception:
            logger.exception("closing %r failed", resource)
            continue
        if not inspect.isawaitable(result):
            continue
        task = asyncio.ensure_future(result)
        if not await _finished_or_abandoned(task, seconds, clock):
            logger.warning("%r did not close within %g s", resource, seconds)
            _terminate(resource)
        elif (error := task.exception()) is not None:
            logger.error("closing %r failed", resource, exc_info=error)


def _terminate(resource: object) -> None:
    terminate = getattr(resource, "terminate", None)
    if callable(terminate):
        try:
            terminate()
        except Exception:
            logger.exception("terminating %r failed", resource)
