"""`RedisRateLimitStore`: rate-limit state shared by every replica, one round trip a batch.

Calls on one key with the same rules, made in one event-loop tick, are coalesced:
the first opens a batch and schedules `_send` with `call_soon`, which runs after
every task already woken in this tick has had its turn to join; one script run
then decides them in arrival order, each on the state the previous ones left.
Under load many requests of one client land in the same tick, and each batch costs
one command to encode, one reply to parse and one script to start instead of one
per request.
"""

from __future__ import annotations

import asyncio
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


_Reply = tuple[list[int], int]
"""The batch's reply and where a call's decisions start in it."""


@cache
def _script() -> Script:
    """The decision script, `lua/ratelimit.lua`, read on first use."""
    return ScriptRegistry("scalepy.ratelimit")["ratelimit"]


class _Batch:
    """The calls on one key under the same rules, made in one tick, in arrival order."""

    __slots__ = ("calls", "commit", "key", "loop", "rules")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, key: str, rules: Sequence[Policy], commit: bool
    ) -> None:
        self.loop = loop
        self.key = key
        self.rules = rules  # the first call's policies: the keys and script args of all
        self.commit = commit
        self.calls: list[tuple[int, asyncio.Future[_Reply]]] = []


class RedisRateLimitStore:
    """Rate-limit state in Redis or Redis Cluster, decided by one Lua script.

    Each `acquire` is decided by one EVALSHA that decides every policy atomically,
    all or nothing, on the server's clock (`TIME`), so all replicas share one exact
    quota. A policy's state lives at `scalepy:rl:{namespace}:{key}:{rule id}`:
    the call's key is the hash tag, so all of a call's keys sit in one cluster
    slot. Keys expire when their quota is whole again, so idle keys disappear.

    Calls on the same key under the same rules made in one event-loop tick share
    one EVALSHA (`coalesce`): the script decides them one after the other, in the
    order they were made, at one server time, exactly as if each had been sent
    alone at that instant. Each call still gets its own decisions, and a call
    cancelled before its batch is sent is left out of it.

    Args:
        client: The Redis connection.
        namespace: Separates limiters sharing one Redis; no braces.
        owns_client: Close `client` in `aclose()`.
        coalesce: Decide the calls of one tick on one key in one script run;
            false sends one script run per call.
        now_us: Test hook: the current time in microseconds, sent to the script
            instead of letting Redis read `TIME`.

    Raises:
        ConfigurationError: `namespace` contains a brace.
    """

    __slots__ = ("_client", "_coalesce", "_keys", "_now_us", "_open", "_owns_client", "_sending")

    def __init__(
        self,
        client: RedisClient,
        *,
        namespace: str = "default",
        owns_client: bool = False,
        coalesce: bool = True,
        now_us: Callable[[], int] | None = None,
    ) -> None:
        self._client = client
        self._keys = KeySpace(f"scalepy:rl:{namespace}")
        self._owns_client = owns_client
        self._coalesce = coalesce
        self._now_us = now_us
        # (key, commit, rule ids) -> the batch collecting this tick's calls.
        self._open: dict[tuple[str, bool, tuple[str, ...]], _Batch] = {}
        self._sending: set[asyncio.Task[None]] = set()  # strong references while running

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
            BackendError: Redis failed or did not answer in time (every call of
                the batch gets the error).
        """
        cost = check_cost(cost)
        if not policies:
            return ()
        if self._coalesce:
            reply, start = await self._join(key, policies, cost, commit)
        else:
            keys, args = self._command(key, policies, commit, [cost])
            reply, start = await self._client.run_script(_script(), keys, args), 0
        return tuple(
            policy_decision(policy, reply[i] == 1, reply[i + 1], reply[i + 2], reply[i + 3])
            for i, policy in zip(range(start, start + 4 * len(policies), 4), policies, strict=True)
        )

    def _join(
        self, key: str, policies: Sequence[Policy], cost: int, commit: bool
    ) -> asyncio.Future[_Reply]:
        """Add the call to this tick's batch for its key and rules, opening one if needed."""
        loop = asyncio.get_running_loop()
        slot = (key, commit, tuple(policy.rule.id for policy in policies))
        batch = self._open.get(slot)
        if batch is None or batch.loop is not loop:  # a batch of another loop keeps its own
            batch = self._open[slot] = _Batch(loop, key, policies, commit)
            loop.call_soon(self._send, slot, batch)
        future: asyncio.Future[_Reply] = loop.create_future()
        batch.calls.append((cost, future))
        return future

    def _send(self, slot: tuple[str, bool, tuple[str, ...]], batch: _Batch) -> None:
        """Close `batch` and send its calls that still wait, in one script run."""
        if self._open.get(slot) is batch:
            del self._open[slot]
        calls = [call for call in batch.calls if not call[1].done()]  # not the cancelled
        if not calls:
            return
        keys, args = self._command(batch.key, batch.rules, batch.commit, [c for c, _ in calls])
        task = batch.loop.create_task(self._run(keys, args, calls, 4 * len(keys)))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def _command(
        self, key: str, policies: Sequence[Policy], commit: bool, costs: list[int]
    ) -> tuple[list[str], list[EncodableT]]:
        """The script's keys and arguments deciding `costs` in order (see `ratelimit.lua`)."""
        now: EncodableT = "" if self._now_us is None else self._now_us()
        args: list[EncodableT] = [now, 1 if commit else 0, len(costs), *costs]
        for policy in policies:
            args += policy.rule.script_args
        return [self.key(key, policy) for policy in policies], args

    async def _run(
        self,
        keys: list[str],
        args: list[EncodableT],
        calls: list[tuple[int, asyncio.Future[_Reply]]],
        width: int,
    ) -> None:
        """Run the batch's script and settle each call with the reply (or the error)."""
        try:
            reply: list[int] = await self._client.run_script(_script(), keys, args)
        except asyncio.CancelledError:  # the loop is shutting down: nobody gets a reply
            for _, future in calls:
                future.cancel()
            raise
        except Exception as exc:  # every caller gets what it would have got alone
            for _, future in calls:
                if not future.done():
                    future.set_exception(exc)
            return
        for index, (_, future) in enumerate(calls):
            if not future.done():  # a caller cancelled since: its cost was still sent
                future.set_result((reply, index * width))

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
