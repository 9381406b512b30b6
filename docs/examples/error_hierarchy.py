"""scalepy errors: one root, builtin mix-ins, and the data a caller needs to react."""

from __future__ import annotations

from scalepy.backends import parse_backend_url
from scalepy.breaker import CircuitBreaker
from scalepy.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ConfigurationError,
    InvalidBackendURL,
    ScalepyError,
    SerializationError,
    SignatureError,
    UsageError,
)


def main() -> None:
    """Show that scalepy errors are caught by `ScalepyError` and by the nearest builtin."""
    # One root for everything scalepy raises...
    for family in (ConfigurationError, BackendError, SerializationError):
        assert issubclass(family, ScalepyError)
    # ...and builtin mix-ins, so existing `except` clauses keep working.
    assert issubclass(InvalidBackendURL, ValueError)
    assert issubclass(BackendUnavailable, ConnectionError)
    assert issubclass(BackendTimeout, TimeoutError)
    assert issubclass(BackendTimeout, BackendUnavailable)
    assert issubclass(SignatureError, SerializationError)

    # Errors carry data: which URL and what is wrong with it, never the password.
    try:
        parse_backend_url("redis://app:s3cret@localhost:6379/0?timeot=1")
    except ValueError as exc:  # InvalidBackendURL is a ValueError
        assert isinstance(exc, InvalidBackendURL)
        assert exc.url == "redis://app:***@localhost:6379/0?timeot=1"
        assert "unknown option 'timeot'" in exc.reason
        assert "s3cret" not in str(exc)
    else:
        raise AssertionError("a misspelt option must be rejected")

    # Backend errors name the backend they come from.
    timeout = BackendTimeout("no reply within 1.0 s", backend="redis://127.0.0.1:6379/0")
    assert str(timeout) == "no reply within 1.0 s [redis://127.0.0.1:6379/0]"
    assert (timeout.message, timeout.backend) == (
        "no reply within 1.0 s",
        "redis://127.0.0.1:6379/0",
    )

    # Misuse fails where it happens, and the message shows the right call.
    async def load() -> int:
        return 42

    try:
        CircuitBreaker(load)  # type: ignore[arg-type]  # as if written `@CircuitBreaker`
    except ConfigurationError as exc:
        assert 'write @CircuitBreaker("name", ...)' in str(exc)
    else:
        raise AssertionError("a breaker without a name must be refused")
    try:
        with CircuitBreaker("postgres"):  # an async context manager: `async with` it
            raise AssertionError("unreachable: `with` is refused on entering")
    except UsageError as exc:  # also a TypeError, as Python's own error would be
        assert "entered with `async with`, not `with`" in str(exc)


if __name__ == "__main__":
    main()
