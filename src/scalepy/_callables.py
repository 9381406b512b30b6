"""Telling coroutine functions apart, for decorators that accept sync and async callables."""

from __future__ import annotations

import functools
import inspect

__all__ = ("is_async_callable",)


def is_async_callable(func: object) -> bool:
    """Whether calling `func` returns a coroutine, seeing through `functools.partial`.

    Also true for objects whose `__call__` is a coroutine function.
    """
    while isinstance(func, functools.partial):
        func = func.func
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - the bound method, not callable()
    )
