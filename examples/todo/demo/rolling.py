"""A rolling restart of the demo's replicas, one at a time, that loses no request.

For each replica in turn:

1. **Drain** it: `POST /health/drain` on its socket, with `TODO_DRAIN_TOKEN`. Its
   readiness fails at once; it keeps serving what it is sent during the hold.
2. **Take it out of nginx**: the config is rewritten with `server ... down;` and
   reloaded. nginx OSS has no active health checks, so it never reads readiness: it
   has to be told. A reload starts new workers that never send this replica a
   request; the old ones finish the requests they have in flight (to this replica
   too), close their connections and exit. Once they are gone nothing is in flight to
   the replica and no nginx connection to it is left open.
3. **Stop** it with SIGTERM: uvicorn's graceful shutdown, which now has nothing to cut.
4. **Start** a new process on the same socket; wait for `/health/startup` and
   `/health/ready`.
5. **Put it back** (reload without `down`), then the next replica.

Why not let `proxy_next_upstream` route around a stopped replica instead: nginx keeps
idle connections to each replica open (`keepalive`), and a replica that stops closes
them. A request nginx writes on such a connection just as it closes fails; nginx
passes a GET on to the next replica, but never a POST or a PATCH it has already sent
(it cannot know whether the replica acted on it): the client gets a 502. Stopping a
replica only once nginx holds no connection to it leaves no such race.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
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
    """From the drain to the replica being back in nginx."""


async def rolling_restart(stack: Stack) -> list[Replaced]:
    """Replace every replica of `stack` in turn, each taken out of nginx while it restarts."""
    return [await restart_replica(stack, name) for name in list(stack.replicas)]


async def restart_replica(stack: Stack, name: str) -> Replaced:
    """Drain replica `name`, take it out of nginx, stop it, start a new one, put it back.

    Raises:
        ChildFailed: The drain was refused, or the new process did not become ready.
    """
    started = time.monotonic()
    old = stack.child(name)
    stack.say(f"{name}: drain, out of nginx")
    # The drain holds its answer for TODO_DRAIN_DELAY: nginx is reconfigured meanwhile.
    drain = asyncio.create_task(_drain(stack, name))
    try:
        await stack.route(down=[name])
    finally:
        await drain
    stack.say(f"{name}: no request in flight; SIGTERM (graceful shutdown)")
    await old.stop()
    stack.children.remove(old)
    new = await stack.start_replica(name)
    await stack.route()
    stack.say(f"{name}: replaced (pid {old.process.pid} -> {new.process.pid}), back in nginx")
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
