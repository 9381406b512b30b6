"""Cache coherence across replicas: two real app processes share Redis; no read is stale.

Each process caches reads in its own L1 and in Redis. A write on one process commits,
then invalidates the tags it touched; the other process must never answer the old
value afterwards, neither from Redis nor from its L1.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import httpx
from todo_support import AppProcess, admin_headers, write_headers

if TYPE_CHECKING:
    from pathlib import Path

    from todo.settings import Settings

ROUNDS = 25


async def test_a_write_on_one_replica_is_read_on_the_other(
    settings: Settings, tmp_path: Path
) -> None:
    """Replica A writes, replica B reads right after: B always sees the write.

    Before every write B reads the todo and the list, so both sit in B's L1 and in
    Redis: a missed invalidation would show as a stale answer.
    """
    headers = write_headers(settings)
    with (
        AppProcess(settings, tmp_path / "a.log") as a,
        AppProcess(settings, tmp_path / "b.log") as b,
    ):
        async with contextlib.AsyncExitStack() as stack:
            writer = await stack.enter_async_context(httpx.AsyncClient(base_url=a.url))
            reader = await stack.enter_async_context(httpx.AsyncClient(base_url=b.url))
            todo = (await writer.post("/todos", json={"title": "v0"}, headers=headers)).json()
            path = f"/todos/{todo['id']}"
            for n in range(1, ROUNDS + 1):
                assert 200 == (await reader.get(path)).status_code  # cached on B now
                assert 200 == (await reader.get("/todos")).status_code
                patch = {"title": f"v{n}", "completed": n % 2 == 0}
                written = await writer.patch(path, json=patch, headers=headers)
                assert 200 == written.status_code
                assert patch == {key: (await reader.get(path)).json()[key] for key in patch}
                assert [f"v{n}"] == [item["title"] for item in (await reader.get("/todos")).json()]
            second = (await writer.post("/todos", json={"title": "new"}, headers=headers)).json()
            assert ["v25", "new"] == [item["title"] for item in (await reader.get("/todos")).json()]
            assert 204 == (await writer.delete(path, headers=headers)).status_code
            assert 404 == (await reader.get(path)).status_code
            assert [second["id"]] == [item["id"] for item in (await reader.get("/todos")).json()]
            assert (
                204 == (await writer.delete("/todos", headers=admin_headers(settings))).status_code
            )
            assert 404 == (await reader.get(f"/todos/{second['id']}")).status_code
            assert [] == (await reader.get("/todos")).json()
