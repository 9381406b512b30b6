"""Error replies from Redis turned into scalepy's error tree, at the boundary."""

from __future__ import annotations

from scalepy.errors import BackendCommandError, BackendError, BackendUnavailable

__all__ = ("ScriptNotLoaded", "reply_error")


class ScriptNotLoaded(BackendCommandError):
    """The server does not know a script's SHA1 (after a restart or `SCRIPT FLUSH`).

    Internal: `RedisClient.run_script` catches it and resends the script body.
    """


# Replies that mean "not now" rather than "wrong command": the server or the cluster
# cannot serve at the moment, and the caller's failure policy applies.
_UNAVAILABLE_PREFIXES = ("CLUSTERDOWN", "TRYAGAIN", "READONLY", "LOADING", "MASTERDOWN", "BUSY ")


def reply_error(message: str, backend: str) -> BackendError:
    """Return the scalepy error for an error reply from Redis.

    Args:
        message: The reply, e.g. `"NOSCRIPT No matching script"`.
        backend: The masked URL of the server, carried by the error.

    Returns:
        `ScriptNotLoaded`, `BackendUnavailable` or `BackendCommandError`.
    """
    if message.startswith("NOSCRIPT"):
        return ScriptNotLoaded(message, backend=backend)
    if message.startswith(_UNAVAILABLE_PREFIXES):
        return BackendUnavailable(message, backend=backend)
    return BackendCommandError(message, backend=backend)
