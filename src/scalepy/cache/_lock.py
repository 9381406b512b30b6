"""`LoadLock`: one process loads a missing entry while the others wait for it.

`acquire` is `SET key token NX PX ttl` with a fresh token (a random prefix per
lock object, the process id, which a fork changes, and a serial number: unique
without drawing random bytes per lock); `release` runs
`lua/release_lock.lua`, which deletes the key only if it still holds that token.
So a lock always frees itself after `ttl` (a holder that crashed or hangs blocks
nobody for longer), and a holder whose lock expired during a slow load cannot
release the lock its successor took meanwhile.

Only the holder's load is protected, not the data: a holder that runs past `ttl`
may overlap with the next one, which at worst loads the entry twice.
"""

from __future__ import annotations

import itertools
import math
import os
import secrets
from functools import cache
from typing import TYPE_CHECKING

from scalepy._validation import check_finite
from scalepy.errors import ConfigurationError

if TYPE_CHECKING:
    from scalepy.backends.redis import RedisClient, Script

__all__ = ("LoadLock",)


@cache
def _release_script() -> Script:
    """`lua/release_lock.lua`, read on first use."""
    from scalepy.backends.redis import ScriptRegistry

    return ScriptRegistry("scalepy.cache")["release_lock"]


class LoadLock:
    """A short Redis lock per cache entry, so that one process loads it at a time.

    The caller derives the lock key from the entry key (same hash tag, so both live
    in one cluster slot). Waiting for another holder's load is the caller's job.

    Args:
        client: The Redis connection.
        ttl: Seconds after which a lock frees itself; > 0. Choose it above the
            loader's usual duration: a holder that runs past it overlaps with the
            next one.

    Raises:
        ConfigurationError: `ttl` is not a finite number > 0.

    Example:
        ```python
        lock = LoadLock(client, ttl=5.0)
        if (token := await lock.acquire("app:{user:42}:lock")) is not None:
            try:
                ...  # load, then store the entry
            finally:
                await lock.release("app:{user:42}:lock", token)
        ```
    """

    __slots__ = ("_client", "_nonce", "_serial", "_ttl", "_ttl_ms")

    def __init__(self, client: RedisClient, *, ttl: float) -> None:
        check_finite("ttl", ttl)
        self._client = client
        self._ttl = ttl
        self._ttl_ms = max(1, math.ceil(ttl * 1000))
        self._nonce = secrets.token_hex(8)
        self._serial = itertools.count()

    @property
    def ttl(self) -> float:
        """Seconds after which a lock frees itself."""
        return self._ttl

    async def acquire(self, key: str) -> str | None:
        """Take the lock at `key` if nobody holds it.

        Args:
            key: The lock's Redis key.

        Returns:
            A token proving ownership, for `release`; `None` when someone holds it.

        Raises:
            ConfigurationError: `key` is empty.
            BackendError: Redis failed or did not answer within the client's timeout
                (whether the lock was taken is then unknown; it expires after `ttl`).
        """
        _check_key(key)
        token, ttl_ms = self.claim()
        reply = await self._client.execute("SET", key, token, "NX", "PX", ttl_ms)
        return token if reply is not None else None

    def claim(self) -> tuple[str, int]:
        """Return a fresh token and the lock's time to live in milliseconds.

        For a script that takes the lock itself (`SET key token NX PX ttl`) in the
        same step as other work; `release` frees it like a lock from `acquire`.
        """
        return f"{self._nonce}:{os.getpid()}:{next(self._serial)}", self._ttl_ms

    async def release(self, key: str, token: str) -> bool:
        """Give the lock back, if `token` still holds it.

        Args:
            key: The lock's Redis key.
            token: What `acquire` returned.

        Returns:
            `True` when the lock was released; `False` when it had expired or
            another holder has it now (which is left alone).

        Raises:
            ConfigurationError: `key` is empty.
            BackendError: Redis failed or did not answer within the client's timeout
                (the lock then expires after `ttl`).
        """
        _check_key(key)
        reply = await self._client.run_script(_release_script(), (key,), (token,))
        return bool(reply)

    def __repr__(self) -> str:
        return f"<LoadLock ttl={self._ttl} client={self._client!r}>"


def _check_key(key: str) -> None:
    if not key:
        raise ConfigurationError("a lock key must be a non-empty string")
