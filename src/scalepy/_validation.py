"""Checks shared by configuration objects, raising `ConfigurationError` with the allowed range."""

from __future__ import annotations

import math
from datetime import timedelta

from scalepy.errors import ConfigurationError

__all__ = ("check_finite", "check_int", "check_name", "check_object")


def check_finite(name: str, value: object, *, minimum: float = 0, inclusive: bool = False) -> None:
    """Raise `ConfigurationError` unless `value` is a finite number above `minimum`.

    Args:
        name: The option's name, for the message.
        value: What was given.
        minimum: The lower bound (0 by default).
        inclusive: Whether `minimum` itself is allowed (not by default).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        # Durations are seconds; a timedelta is the usual other guess.
        hint = f" (seconds: {name}=delta.total_seconds())" if isinstance(value, timedelta) else ""
        raise ConfigurationError(f"{name} must be a number, got {value!r}{hint}")
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


def check_name(owner: str, name: object) -> None:
    """Raise `ConfigurationError` unless `name` is a non-empty str.

    A function in its place means the class was used as a bare decorator
    (`@CircuitBreaker` for `@CircuitBreaker("postgres")`); the message says so.

    Args:
        owner: The class being built, for the message.
        name: What was given (checked as given, whatever its annotation says).
    """
    if isinstance(name, str) and name:
        return
    if callable(name):
        raise ConfigurationError(
            f'{owner} needs a name before it decorates: write @{owner}("name", ...) '
            f"(or build it once and decorate with the object), not @{owner}; got {name!r}"
        )
    raise ConfigurationError(f"{owner} name must be a non-empty string, got {name!r}")


def check_object(what: str, given: object, method: str, kind: str, hint: str) -> None:
    """Refuse, where it is given, an object that would fail later: a URL for a client, say.

    Args:
        what: Who takes it, for the message, e.g. `"redis_check() takes"`.
        given: What was given.
        method: A method the object must have, e.g. `"ping"`.
        kind: What is expected, e.g. `"a RedisClient"`.
        hint: How to get one, e.g. `"redis_check(RedisClient.from_url(url))"`.
    """
    if isinstance(given, str):
        # Imported here: scalepy.backends imports this module.
        from scalepy.backends._masking import mask_url

        raise ConfigurationError(f"{what} {kind}, not a URL ({mask_url(given)!r}): {hint}")
    if not callable(getattr(given, method, None)):
        raise ConfigurationError(f"{what} {kind}, not a {type(given).__name__}: {hint}")
