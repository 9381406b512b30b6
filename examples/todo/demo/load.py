"""Steady load through nginx: clients reading and writing todos the whole time, and what they saw.

Each client is one keep-alive connection to nginx that loops: create a todo, read it
back, read a page of the list, mark the todo completed. A request counts as failed
when it raised (connection reset, timeout) or answered anything but the status the
API promises for it; every acknowledged write is remembered, so that what the load
wrote can be read back afterwards (`Outcomes.unreadable`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Self

import httpx

__all__ = ("UNTHROTTLED", "Outcomes", "SteadyLoad")

UNTHROTTLED = {
    "TODO_RATE_LIMIT": "100000/second",
    "TODO_WRITE_RATE_LIMIT": "100000/second",
    "TODO_SHEDDING": "false",
}
"""Stack settings for the load: every client is 127.0.0.1 to the rate limiter, one quota;
and no load shedding: the clients are a closed loop that keeps every replica saturated
by design, so a shedder would (rightly) refuse what a rolling restart must not lose."""

_TIMEOUT = 30.0


@dataclass
class Outcomes:
    """What the clients saw."""

    statuses: Counter[int] = field(default_factory=Counter)
    """How many responses had each status."""
    failures: list[str] = field(default_factory=list)
    """One line per failed request: method, path, and the status or the exception."""
    written: dict[int, bool] = field(default_factory=dict)
    """Todo id -> `completed` as last acknowledged, for every todo the clients created."""

    errors: int = 0
    """Requests that got no response (they raised: connection reset, timeout)."""

    @property
    def requests(self) -> int:
        """Requests sent, answered or not."""
        return self.statuses.total() + self.errors

    async def unreadable(self, client: httpx.AsyncClient) -> list[str]:
        """Read every acknowledged write back; one line per todo that is missing or wrong."""
        wrong = []
        for todo_id, completed in self.written.items():
            response = await client.get(f"/todos/{todo_id}")
            if response.status_code != 200 or response.json()["completed"] is not completed:
                wrong.append(f"todo {todo_id}: {response.status_code} {response.text[:200]}")
        return wrong


class SteadyLoad:
    """`clients` concurrent clients of `base_url`, from `async with` until its exit.

    Args:
        base_url: nginx.
        token: A bearer token with the `todos:write` scope.
        clients: How many clients (connections) at once.
    """

    def __init__(self, base_url: str, token: str, *, clients: int = 30) -> None:
        self.outcomes = Outcomes()
        self._base_url = base_url
        self._headers = {"authorization": f"Bearer {token}"}
        self._clients = clients
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._first_answers = asyncio.Event()

    async def __aenter__(self) -> Self:
        self._tasks = [asyncio.create_task(self._client(n)) for n in range(self._clients)]
        await self._first_answers.wait()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stopping.set()
        await asyncio.gather(*self._tasks)

    async def _client(self, number: int) -> None:
        async with httpx.AsyncClient(base_url=self._base_url, timeout=_TIMEOUT) as client:
            sequence = 0
            while not self._stopping.is_set():
                sequence += 1
                await self._round(client, f"load {number}.{sequence}")
                self._first_answers.set()

    async def _round(self, client: httpx.AsyncClient, title: str) -> None:
        created = await self._send(
            client, 201, "POST", "/todos", json={"title": title}, headers=self._headers
        )
        if created is None:
            return
        todo_id: int = created.json()["id"]
        self.outcomes.written[todo_id] = False
        await self._send(client, 200, "GET", f"/todos/{todo_id}")
        await self._send(client, 200, "GET", "/todos", params={"limit": 10})
        patched = await self._send(
            client, 200, "PATCH", f"/todos/{todo_id}", json={"completed": True},
            headers=self._headers,
        )  # fmt: skip
        if patched is not None:
            self.outcomes.written[todo_id] = True

    async def _send(
        self, client: httpx.AsyncClient, expected: int, method: str, url: str, **options: Any
    ) -> httpx.Response | None:
        """Send one request and count its outcome; the response if it is the `expected` one."""
        try:
            response = await client.request(method, url, **options)
        except httpx.HTTPError as exc:
            self.outcomes.errors += 1
            self.outcomes.failures.append(f"{method} {url}: raised {exc!r}")
            return None
        self.outcomes.statuses[response.status_code] += 1
        if response.status_code != expected:
            self.outcomes.failures.append(
                f"{method} {url}: {response.status_code} {response.text[:200]}"
            )
            return None
        return response
