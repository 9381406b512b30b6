"""`RedisRateLimitStore`: rate-limit state shared by every replica, one round trip a batch.

Calls on one key under the same rules are coalesced while the key is busy. A call
whose key has no script run in flight runs alone, at once, as it would uncoalesced.
A call that comes while one is in flight joins the batch of its tick: the first
such call queues one script call in the Redis client's pipeline
(`RedisClient.submit_script`) whose arguments are asked for when the tick's
pipeline is written, after every task woken in this tick has had its turn to join;
the script then decides the calls in arrival order, each on the state the previous
ones left. Under load the requests of one client keep its key busy, and each batch
costs one command to encode, one reply to parse and one script to start instead of
one per request; a call on a quiet key (one client, or many keys) pays nothing.
Commands reach the server in the order their first call was made, so calls are
decided in arrival order across the lone calls and the batches.
"""

from __future__ import annotations

import asyncio
import functools
from functools import cache
from typing import TYPE_CHECKING, Any

from scalepy.backends.keys import KeySpace
from scalepy.backends.redis import ScriptRegistry
from scalepy.errors import BackendError
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
_Slot = tuple[str, bool, tuple[str, ...]]
"""(key, commit, rule ids): the calls one batch can decide."""


@cache
def _script() -> Script:
    """The decision script, `lua/ratelimit.lua`, read on first use."""
    return ScriptRegistry("scalepy.ratelimit")["ratelimit"]


def _own_copy(error: BaseException) -> BaseException:
    """`error` for one more caller: a backend error is copied.

    One instance raised in many tasks would collect every task's traceback.
    """
    if isinstance(error, BackendError):
        return type(error)(error.message, backend=error.backend)
    return error


class _Batch:
    """The calls on one key under the same rules, made in one tick, in arrival order."""

    __slots__ = ("calls", "loop", "sent")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.calls: list[tuple[int, asyncio.Future[_Reply]]] = []
        self.sent: list[asyncio.Future[_Reply]] | None = None  # the calls the script decides


class RedisRateLimitStore:
    """Rate-limit state in Redis or Redis Cluster, decided by one Lua script.

    Each `acquire` is decided by one EVALSHA that decides every policy atomically,
    all or nothing, on the server's clock (`TIME`), so all replicas share one exact
    quota. A policy's state lives at `scalepy:rl:{namespace}:{key}:{rule id}`:
    the call's key is the hash tag, so all of a call's keys sit in one cluster
    slot. Keys expire when their quota is whole again, so idle keys disappear.

    Calls on the same key under the same rules made in one event-loop tick while
    the key has a script run in flight share one EVALSHA (`coalesce`): the script
    decides them one after the other, in the order they were made, at one server
    time, exactly as if each had been sent alone at that instant. Each call still
    gets its own decisions, and a call cancelled before its batch is sent is left
    out of it.

    Args:
        client: The Redis connection.
        namespace: Separates limiters sharing one Redis; no braces.
        owns_client: Close `client` in `aclose()`.
        coalesce: Decide the calls of one tick on a busy key in one script run;
            false sends one script run per call.
        now_us: Test hook: the current time in microseconds, sent to the script
            instead of letting Redis read `TIME`.

    Raises:
        ConfigurationError: `namespace` contains a brace.
    """

    __slots__ = ("_busy", "_client", "_coalesce", "_keys", "_now_us", "_open", "_owns_client")

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
        self._open: dict[_Slot, _Batch] = {}  # the batches collecting this tick's calls
        self._busy: dict[_Slot, int] = {}  # script runs in flight, per slot

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
        if not self._coalesce:
            reply, start = await self._run_alone(key, policies, cost, commit), 0
        else:
            slot = (key, commit, tuple([policy.rule.id for policy in policies]))
            if slot in self._open or slot in self._busy:
                reply, start = await self._join(slot, key, policies, cost, commit)
            else:  # nothing to wait with: as fast as uncoalesced, and later calls join a batch
                self._enter(slot)
                try:
                    reply, start = await self._run_alone(key, policies, cost, commit), 0
                finally:
                    self._leave(slot)
        return tuple(  # of a list: a generator would cost a call per policy
            [
                policy_decision(policy, reply[i] == 1, reply[i + 1], reply[i + 2], reply[i + 3])
                for i, policy in zip(
                    range(start, start + 4 * len(policies), 4), policies, strict=True
                )
            ]
        )

    async def _run_alone(
        self, key: str, policies: Sequence[Policy], cost: int, commit: bool
    ) -> list[int]:
        """Decide one call in a script run of its own."""
        keys, rules = self._keys_and_rules(key, policies)
        args: list[EncodableT] = [self._now(), 1 if commit else 0, 1, cost, *rules]
        reply: list[int] = await self._client.run_script(_script(), keys, args)
        return reply

    def _keys_and_rules(
        self, key: str, policies: Sequence[Policy]
    ) -> tuple[list[str], list[EncodableT]]:
        """The script's keys for `key` under `policies`, and their rules' arguments."""
        keys = [self.key(key, policy) for policy in policies]
        return keys, [arg for policy in policies for arg in policy.rule.script_args]

    def _join(
        self, slot: _Slot, key: str, policies: Sequence[Policy], cost: int, commit: bool
    ) -> asyncio.Future[_Reply]:
        """Add the call to this tick's batch for its slot, opening one if needed."""
        loop = asyncio.get_running_loop()
        batch = self._open.get(slot)
        if batch is None or batch.loop is not loop:  # a batch of another loop keeps its own
            batch = _Batch(loop)
            keys, rules = self._keys_and_rules(key, policies)
            self._client.submit_script(
                _script(),
                keys,
                functools.partial(self._close, slot, batch, commit, rules),
                functools.partial(self._settle, slot, batch, 4 * len(keys)),
            )
            self._open[slot] = batch  # once queued: a batch never sent is never joined
            self._enter(slot)
        future: asyncio.Future[_Reply] = loop.create_future()
        batch.calls.append((cost, future))
        return future

    def _enter(self, slot: _Slot) -> None:
        """Count one more script run in flight for `slot`."""
        self._busy[slot] = self._busy.get(slot, 0) + 1

    def _leave(self, slot: _Slot) -> None:
        """Count one script run fewer in flight for `slot`."""
        left = self._busy[slot] - 1
        if left:
            self._busy[slot] = left
        else:
            del self._busy[slot]

    def _close(
        self, slot: _Slot, batch: _Batch, commit: bool, rules: list[EncodableT]
    ) -> list[EncodableT] | None:
        """The script's arguments for the calls that still wait; `None` if none does."""
        if self._open.get(slot) is batch:
            del self._open[slot]
        calls = [call for call in batch.calls if not call[1].done()]  # not the cancelled
        if not calls:
            return None
        batch.sent = [future for _, future in calls]
        return [self._now(), 1 if commit else 0, len(calls), *(c for c, _ in calls), *rules]

    def _settle(self, slot: _Slot, batch: _Batch, width: int, reply: asyncio.Future[Any]) -> None:
        """Give each call of the batch its place in the reply, or the batch's error."""
        self._leave(slot)
        if self._open.get(slot) is batch:  # failed before it was written (client closed)
            del self._open[slot]
        waiting = batch.sent if batch.sent is not None else [f for _, f in batch.calls]
        if reply.cancelled():  # withdrawn: every call had been cancelled
            return
        error = reply.exception()
        if error is not None:
            for future in waiting:
                if not future.done():  # each caller gets its own copy of the error
                    future.set_exception(_own_copy(error))
            return
        replies: list[int] = reply.result()
        for index, future in enumerate(waiting):
            if not future.done():  # a caller cancelled since: its cost was still sent
                future.set_result((replies, index * width))

    def _now(self) -> EncodableT:
        """`now` for the script: the test hook's time, or "" for the server's `TIME`."""
        return "" if self._now_us is None else self._now_us()

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
