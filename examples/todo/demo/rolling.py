"""A rolling restart of the demo's replicas, one at a time, that loses no request.

nginx is never reloaded (a reload closes its clients' idle keep-alive connections, and
a request a client sends on one at that instant is never read). For each replica:

1. **Drain** it: `POST /health/drain` on its socket, with `TODO_DRAIN_TOKEN`. Its
   readiness fails, and every response it sends from now on carries `Connection:
   close`: nginx drops each connection to it after one more request instead of
   keeping it for the next.
2. **Unlink its socket**: nginx's next connects to it fail (`No such file`) before
   anything is sent, and `proxy_next_upstream error` passes the request, POST
   included, to another replica. `max_fails=0`: the failures never mark it unavailable.
3. **Wait until no connection to it is open**: the last requests in flight were
   answered, and the idle connections nginx kept were used once more or closed by its
   upstream `keepalive_timeout` (2 s). No request can reach it any more.
4. **Stop** it with SIGTERM: uvicorn's graceful shutdown, which has nothing to cut.
5. **Start** a new process on the same socket; wait for `/health/startup` and
   `/health/ready`. nginx connects to it again on its own.

Why not SIGTERM right after the drain: uvicorn closes the connections it holds idle,
and nginx may write a request on one at that instant; it passes such a GET on to the
next replica, but never a POST or a PATCH it has already sent (it cannot know whether
the replica acted on it): the client gets a 502.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from demo.processes import ChildFailed

if TYPE_CHECKING:
    from demo.stack import Stack

__all__ = ("Replaced", "restart_replica", "rolling_restart")

_DRAIN_TIMEOUT = 60.0  # the drain answers after the app's hold (TODO_DRAIN_DELAY)


@dataclass(frozen=True, slots=True)
class Replaced:
    """One replica replaced by a new process on the same socket."""

    name: str
    """The replica (`app-1`, ...)."""
    old_pid: int
    """The process stopped."""
    new_pid: int
    """The process started in its place."""
    exit_status: int | None
    """How the old process exited: -15 after a graceful shutdown (uvicorn ends by raising
    the SIGTERM it got again, so that its parent sees the signal)."""
    seconds: float
    """From the drain to the new process being ready."""


async def rolling_restart(stack: Stack) -> list[Replaced]:
    """Replace every replica of `stack` in turn, no request sent to one that stops."""
    return [await restart_replica(stack, name) for name in list(stack.replicas)]


async def restart_replica(stack: Stack, name: str) -> Replaced:
    """Drain replica `name`, close its socket to new connects, stop it once idle, start anew.

    Raises:
        ChildFailed: The drain was refused, connections to it stayed open, or the new
            process did not become ready.
    """
    started = time.monotonic()
    old = stack.child(name)
    stack.say(f"{name}: drain")
    await _drain(stack, name)
    socket = stack.replicas[name]
    socket.unlink()  # nginx's next connects fail before sending: it tries another replica
    await _connections_closed(socket)
    stack.say(f"{name}: no connection left; SIGTERM (graceful shutdown)")
    await old.stop()
    stack.children.remove(old)
    new = await stack.start_replica(name)
    stack.say(f"{name}: replaced (pid {old.process.pid} -> {new.process.pid})")
    return Replaced(
        name=name,
        old_pid=old.process.pid,
        new_pid=new.process.pid,
        exit_status=old.process.returncode,
        seconds=time.monotonic() - started,
    )


async def _drain(stack: Stack, name: str) -> None:
    token = stack.env["TODO_DRAIN_TOKEN"]
    transport = httpx.AsyncHTTPTransport(uds=str(stack.replicas[name]))
    async with httpx.AsyncClient(transport=transport, timeout=_DRAIN_TIMEOUT) as client:
        response = await client.post(
            "http://replica/health/drain", headers={"authorization": f"Bearer {token}"}
        )
    if response.status_code != 200:
        raise ChildFailed(f"{name} refused the drain: {response.status_code} {response.text}")


async def _connections_closed(socket: Path, *, within: float = _DRAIN_TIMEOUT) -> None:
    """Return once no connection to the listener once bound at `socket` is open.

    Polled from /proc/net/unix (another process's sockets: no event to await), where
    the connections a listener accepted carry its path, state 03 (connected).
    """
    deadline = time.monotonic() + within
    while _connected(socket):
        if time.monotonic() > deadline:
            raise ChildFailed(f"connections to {socket} still open after {within:g} s")
        await asyncio.sleep(0.02)


def _connected(socket: Path) -> int:
    rows = Path("/proc/net/unix").read_text().splitlines()[1:]
    return sum(1 for row in rows if row.split()[5:6] == ["03"] and row.endswith(f" {socket}"))
