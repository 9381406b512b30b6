"""`RedisRateLimitStore`: rate-limit state shared by every replica, one round trip a call."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from scalepy.backends.keys import KeySpace
from scalepy.backends.redis import ScriptRegistry
from scalepy.ratelimit._algorithms import check_cost, policy_decision

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from redis.typing import EncodableT

    from scalepy.backends.redis import RedisClient, Script
    from scalepy.ratelimit._decision import PolicyDecision
    from scalepy.ratelimit._policies import Policy

__all__ = ("RedisRateLimitStore",)


@cache
def _script() -> Script:
    """The decision script, `lua/ratelimit.lua`, read on first use."""
    return ScriptRegistry("scalepy.ratelimit")["ratelimit"]


class RedisRateLimitStore:
    """Rate-limit state in Redis or Redis Cluster, decided by one Lua script.

    Each `acquire` is one EVALSHA that decides every policy atomically, all or
    nothing, on the server's clock (`TIME`), so all replicas share one exact
    quota. A policy's state lives at `scalepy:rl:{namespace}:{key}:{rule id}`:
    the call's key is the hash tag, so all of a call's keys sit in one cluster
    slot. Keys expire when their quota is whole again, so idle keys disappear.

    Args:
        client: The Redis connection.
        namespace: Separates limiters sharing one Redis; no braces.
        owns_client: Close `client` in `aclose()`.
        now_us: Test hook: the current time in microseconds, sent to the script
            instead of letting Redis read `TIME`.

    Raises:
        ConfigurationError: `namespace` contains a brace.
    """

    __slots__ = ("_client", "_keys", "_now_us", "_owns_client")

    def __init__(
        self,
        client: RedisClient,
        *,
        namespace: str = "default",
        owns_client: bool = False,
        now_us: Callable[[], int] | None = None,
    ) -> None:
        self._client = client
        self._keys = KeySpace(f"scalepy:rl:{namespace}")
        self._owns_client = owns_client
        self._now_us = now_us

    def key(self, key: str, policy: Policy) -> str:
        """Return the Redis key holding `key`'s state under `policy`."""
        return self._keys.key(key, policy.rule.id)

    async def acquire(
        self, key: str, policies: Sequence[Policy], cost: int, *, commit: bool = True
    ) -> tuple[PolicyDecision, ...]:
        """Take `cost` from every policy's quota for `key` if all allow it, in one round trip.

        Args:
            key: The identity being limited.
            policies: The policies; equal policies share state.
            cost: What the request costs, >= 0.
            commit: Consume when allowed; false only asks what `cost` would get.

        Returns:
            One decision per policy, in order.

        Raises:
            ConfigurationError: `cost` is not a whole number >= 0.
            BackendError: Redis failed or did not answer in time.
        """
        cost = check_cost(cost)
        if not policies:
            return ()
        now: EncodableT = "" if self._now_us is None else self._now_us()
        args: list[EncodableT] = [now, cost, 1 if commit else 0]
        for policy in policies:
            args += policy.rule.script_args
        keys = [self.key(key, policy) for policy in policies]
        reply: list[int] = await self._client.run_script(_script(), keys, args)
        return tuple(
            policy_decision(policy, reply[i] == 1, reply[i + 1], reply[i + 2], reply[i + 3])
            for i, policy in zip(range(0, len(reply), 4), policies, strict=True)
        )

    async def reset(self, key: str, policies: Sequence[Policy]) -> None:
        """Delete `key`'s state under `policies` with one DEL: their quotas are whole again.

        Raises:
            BackendError: Redis failed or did not answer in time.
        """
        if policies:
            await self._client.execute("DEL", *(self.key(key, policy) for policy in policies))

    async def ping(self) -> None:
        """Ask Redis for an answer (connecting, logging in and selecting the db first).

        Raises:
            BackendError: Redis cannot be reached, refused the login or the db.
        """
        await self._client.ping()

    async def aclose(self) -> None:
        """Close the client if this store owns it."""
        if self._owns_client:
            await self._client.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._keys.prefix!r} client={self._client!r}>"
