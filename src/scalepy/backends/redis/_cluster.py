"""Redis Cluster: each command goes to the node that owns its key's slot.

The slot map comes from `CLUSTER SLOTS`, fetched on first use and again after any
`MOVED` redirection. A redirected command is resent to the node the reply names
(`ASK` redirections are preceded by `ASKING`), so resharding is invisible to
callers. Commands are grouped per node, so one tick's batch becomes one pipeline
per node.

A subscription goes to the node owning its channel's slot (`subscriber`); that
node's connection carries it along with the node's commands (see `_pubsub.py`).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from redis.crc import key_slot

from scalepy.backends.redis._command import encode_command, leading_arguments
from scalepy.backends.redis._node import Node
from scalepy.backends.redis._pipeline import fail_batches
from scalepy.backends.redis._resp import ignore_outcome
from scalepy.errors import BackendError, BackendUnavailable

if TYPE_CHECKING:
    from scalepy.backends.redis._resp import Endpoint, RespConnection

__all__ = ("ClusterRouter",)

_SLOTS = 16384
# Commands whose second word is not a key: they may run on any node.
_KEYLESS = frozenset(
    {b"PING", b"ECHO", b"TIME", b"INFO", b"SCRIPT", b"CLUSTER", b"CLIENT", b"CONFIG", b"COMMAND",
     b"DBSIZE", b"FLUSHALL", b"FLUSHDB", b"PUBLISH", b"FUNCTION", b"MEMORY", b"LATENCY",
     b"SLOWLOG"}
)  # fmt: skip
# Commands whose keys follow a key count: name, script or function, numkeys, key...
_SCRIPTED = frozenset({b"EVAL", b"EVALSHA", b"FCALL", b"FCALL_RO"})
_ASKING = encode_command(("ASKING",))
_CLUSTER_SLOTS = encode_command(("CLUSTER", "SLOTS"))


class ClusterRouter:
    """Dispatches batches across a cluster's nodes; see the module docstring."""

    __slots__ = ("_backend", "_nodes", "_pending", "_refreshing", "_slots", "_template", "_timeout")

    def __init__(
        self, seeds: list[Endpoint], *, template: Endpoint, backend: str, timeout: float
    ) -> None:
        self._template = template
        self._backend = backend
        self._timeout = timeout
        self._nodes: dict[tuple[str, int], Node] = {}
        for seed in seeds:
            self._node(seed.host, seed.port)
        self._slots: list[Node | None] = [None] * _SLOTS
        self._refreshing: asyncio.Task[None] | None = None
        self._pending: list[tuple[list[bytes], list[asyncio.Future[Any]]]] = []

    def dispatch(self, wires: list[bytes], futures: list[asyncio.Future[Any]]) -> None:
        """Send each encoded command to its slot's node, once the slot map is known."""
        if self._refreshing is not None or self._slots[0] is None:
            self._pending.append((wires, futures))
            self._refresh_soon()
            return
        groups: dict[Node, tuple[list[bytes], list[asyncio.Future[Any]]]] = {}
        for wire, future in zip(wires, futures, strict=True):
            node_wires, node_futures = groups.setdefault(self._route(wire), ([], []))
            node_wires.append(wire)
            node_futures.append(future)
        for node, (node_wires, node_futures) in groups.items():
            node.dispatch(node_wires, node_futures)

    def idle(self) -> bool:
        """Whether the slot map is known and every node is idle (see `Node.idle`)."""
        return (
            self._refreshing is None  # nothing pending: it waits for the refresh
            and self._slots[0] is not None
            and all(node.idle() for node in self._nodes.values())
        )

    def waiting(self) -> int:
        """Commands sent and not yet answered, over every node."""
        return sum(node.waiting() for node in self._nodes.values())

    def abort_stalled(self, silent_since: float) -> None:
        """Drop every node connection owing replies and silent after `silent_since`."""
        for node in self._nodes.values():
            node.abort_stalled(silent_since)

    async def aclose(self, grace: float) -> None:
        """Close every node's connection, giving unanswered commands `grace` seconds."""
        if self._refreshing is not None:
            await asyncio.wait([self._refreshing], timeout=grace)
        await asyncio.gather(*(node.aclose(grace) for node in self._nodes.values()))

    async def subscriber(self, channel: bytes, *, redirect: str | None) -> RespConnection:
        """Return the connection to the node owning `channel`'s slot (see `Node.subscriber`).

        The slot map is learnt first if needed.

        Args:
            channel: The channel.
            redirect: The `MOVED` reply the last subscription attempt got, if any:
                the node it names owns the slot now.

        Raises:
            BackendUnavailable: No node answered CLUSTER SLOTS, or none serves the slot.
            BackendError: The node cannot be reached or refused the login.
        """
        slot = key_slot(channel)
        if redirect is not None:
            self._slots[slot] = self._redirected(redirect)[1]
            self._refresh_soon()  # other slots may have moved too
        elif self._slots[slot] is None:
            self._refresh_soon()
        refreshing = self._refreshing
        if refreshing is not None and self._slots[slot] is None:
            await asyncio.shield(refreshing)
        owner = self._slots[slot]
        if owner is None:
            raise BackendUnavailable(f"no cluster node serves slot {slot}", backend=self._backend)
        return await owner.subscriber(channel, redirect=None)

    def _route(self, wire: bytes) -> Node:
        key = _key_of(wire)
        if key is not None:
            node = self._slots[key_slot(key)]
            if node is not None:
                return node
        return next(iter(self._nodes.values()))

    def _node(self, host: str, port: int) -> Node:
        node = self._nodes.get((host, port))
        if node is None:
            endpoint = replace(self._template, host=host, port=port, db=0)
            node = Node(endpoint, backend=self._backend, redirect=self._redirect)
            self._nodes[host, port] = node
        return node

    def _redirected(self, message: str) -> tuple[str, Node]:
        """The kind (MOVED, ASK) of a redirection reply, and the node it names."""
        kind, _, address = message.split(" ", 2)
        host, _, port = address.rpartition(":")
        return kind, self._node(host or self._template.host, int(port))

    def _redirect(self, wire: bytes, future: asyncio.Future[Any], message: str) -> None:
        kind, node = self._redirected(message)
        if kind == "MOVED":
            self._slots[int(message.split(" ", 2)[1])] = node
            self._refresh_soon()
            node.dispatch([wire], [future])
        else:
            asking: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            asking.add_done_callback(ignore_outcome)
            node.dispatch([_ASKING, wire], [asking, future])

    def _refresh_soon(self) -> None:
        if self._refreshing is None:
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        error: BackendError = BackendUnavailable("no cluster node answered", backend=self._backend)
        try:
            for node in list(self._nodes.values()):
                future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                node.dispatch([_CLUSTER_SLOTS], [future])
                try:
                    async with asyncio.timeout(self._timeout):
                        self._apply(await future)
                    break
                except (BackendError, TimeoutError) as exc:
                    if isinstance(exc, BackendError):
                        error = exc
            else:
                self._fail_pending(error)
        finally:
            self._refreshing = None
        pending, self._pending = self._pending, []
        for commands, futures in pending:
            self.dispatch(commands, futures)

    def _apply(self, ranges: list[list[Any]]) -> None:
        for start, end, primary, *_ in ranges:
            node = self._node(primary[0].decode() or self._template.host, int(primary[1]))
            self._slots[start : end + 1] = [node] * (end - start + 1)

    def _fail_pending(self, error: BackendError) -> None:
        pending, self._pending = self._pending, []
        fail_batches(pending, error)


def _key_of(wire: bytes) -> bytes | None:
    name, *key = leading_arguments(wire, 2)
    name = name.upper()
    if name in _SCRIPTED:
        _, _, count, *key = leading_arguments(wire, 4)
        return key[0] if key and count.isdigit() and int(count) > 0 else None
    if name in _KEYLESS or not key:
        return None
    return key[0]
