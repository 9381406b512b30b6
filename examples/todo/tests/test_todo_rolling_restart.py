"""A rolling restart of the demo stack under steady load: no request lost, every replica new.

The real stack (scripts/demo.sh's `Stack`): three uvicorn replicas on Unix sockets behind
a real nginx, a worker, PostgreSQL through the relay. Twenty clients read and write
through nginx for the whole restart, never sending a request twice; each replica in turn
is drained, its socket unlinked, stopped with SIGTERM once no connection to it is left,
and replaced, with no nginx reload (demo/rolling.py says why in that order).
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest

from demo.load import UNTHROTTLED, SteadyLoad
from demo.rolling import restart_replica
from demo.stack import Options, Stack

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

CLIENTS = 20


@pytest.fixture
async def stack(
    database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Stack]:
    """The demo stack on this session's database and the test Redis, on a free port."""
    monkeypatch.setenv("TODO_DATABASE_URL", database_url)
    monkeypatch.setenv("TODO_REDIS_URL", redis_url)
    monkeypatch.setenv("TODO_LOG_LEVEL", "WARNING")
    stack = Stack(Options(replicas=3, port=0, settings=UNTHROTTLED), say=lambda _: None)
    try:
        await stack.start()
        yield stack
    finally:
        await stack.stop()


async def test_a_rolling_restart_under_steady_load_loses_no_request(
    stack: Stack, database_url: str
) -> None:
    """Every request sent during the restart is answered as the API promises (no 502/503).

    Every replica is a new process afterwards, each old one ended its graceful shutdown,
    the load kept flowing while each replica was out, and every write the clients got
    an answer for reads back the same through nginx. The clients never resend a
    request, so any connection closed under one is a failure; there are exactly as many
    todos as 201s.
    """
    token = await stack.mint_token("todos:write")
    before = {name: stack.child(name).process.pid for name in stack.replicas}
    requests_while_out = []
    async with SteadyLoad(stack.base_url, token, clients=CLIENTS) as load:
        replaced = []
        for name in list(stack.replicas):
            sent = load.outcomes.requests
            replaced.append(await restart_replica(stack, name))
            requests_while_out.append(load.outcomes.requests - sent)
    outcomes = load.outcomes
    lost = "\n".join(outcomes.failures)
    assert [] == outcomes.failures, f"{len(outcomes.failures)} of {outcomes.requests}:\n{lost}"
    assert {200, 201} == set(outcomes.statuses)
    assert [(name, before[name], -signal.SIGTERM) for name in before] == [
        (replica.name, replica.old_pid, replica.exit_status) for replica in replaced
    ]
    for replica in replaced:  # uvicorn's last words after a graceful shutdown
        log = (stack.logs / f"{replica.name}.log").read_text()
        assert f"Finished server process [{replica.old_pid}]" in log
    assert not {replica.new_pid for replica in replaced} & set(before.values())
    assert all(stack.child(name).running for name in stack.replicas)
    assert all(count > 0 for count in requests_while_out), requests_while_out
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30.0) as client:
        assert [] == await outcomes.unreadable(client)
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetchval("SELECT count(*) FROM todos WHERE title LIKE 'load %'")
    finally:
        await connection.close()
    assert outcomes.statuses[201] == len(outcomes.written) == rows
