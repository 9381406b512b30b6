"""Checks shared by configuration objects, raising `ConfigurationError` with the allowed range."""

from __future__ import annotations

import math

from scalepy.errors import ConfigurationError

__all__ = ("check_finite", "check_int")


def check_finite(name: str, value: object, *, minimum: float = 0, inclusive: bool = False) -> None:
    """Raise `ConfigurationError` unless `value` is a finite number above `minimum`.

    Args:
        name: The option's name, for the message.
        value: What was given.
        minimum: The lower bound (0 by default).
        inclusive: Whether `minimum` itself is allowed (not by default).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{name} must be a number, got {value!r}")
    above = value >= minimum if inclusive else value > minimum
    if not (math.isfinite(value) and above):
        relation = ">=" if inclusive else ">"
        raise ConfigurationError(
            f"{name} must be a finite number {relation} {minimum}, got {value!r}"
        )


def check_int(name: str, value: object, *, minimum: int = 1, maximum: int | None = None) -> None:
    """Raise `ConfigurationError` unless `value` is an int (not a bool) in the range.

    Args:
        name: The option's name, for the message.
        value: What was given (checked as given, whatever its annotation says).
        minimum: The lowest value allowed (1 by default).
        maximum: The highest value allowed, if any.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        allowed = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise ConfigurationError(f"{name} must be an int {allowed}, got {value!r}")
