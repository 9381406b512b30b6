"""The middleware behind a real uvicorn listening on a Unix socket (`uvicorn --uds`).

A proxy such as nginx talks to the application over the socket, so the ASGI scope
has no client address; the proxy names the client in `X-Forwarded-For`. Each test
starts uvicorn in a subprocess, waits for its "running" line, sends requests over
the socket with httpx's UDS transport, then stops it and reads what it logged.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 30.0
IDENTITY_WARNING = "found no identity for GET /"


@dataclass
class Server:
    """A running uvicorn, the client talking to it, and (once stopped) its log."""

    client: httpx.AsyncClient
    log: str = ""

    async def statuses(self, *clients: str) -> list[int]:
        """GET / once per forwarded client address, as the proxy would send it."""
        return [
            (await self.client.get("/", headers={"x-forwarded-for": client})).status_code
            for client in clients
        ]


@asynccontextmanager
async def uvicorn_on_unix_socket(*, trust_unix: bool) -> AsyncIterator[Server]:
    """Run the test application under uvicorn on a fresh Unix socket; stop it afterwards."""
    with tempfile.TemporaryDirectory(prefix="scalepy-uds-") as directory:  # a short path
        socket = Path(directory) / "app.sock"
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "tests.ratelimit.unix_socket_app:build",
            "--uds",
            str(socket),
            "--no-access-log",
            cwd=ROOT,
            env={**os.environ, "SCALEPY_TEST_TRUST_UNIX": "1" if trust_unix else "0"},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        try:
            startup = await asyncio.wait_for(_running(process.stderr), STARTUP_TIMEOUT)
            transport = httpx.AsyncHTTPTransport(uds=str(socket))
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                server = Server(client)
                yield server
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGINT)
            rest = await process.stderr.read()
            await process.wait()
        server.log = startup + rest.decode()


async def _running(stderr: asyncio.StreamReader) -> str:
    """Read uvicorn's log up to its "running on unix socket" line; fail if it exits first."""
    lines: list[str] = []
    while True:
        line = (await stderr.readline()).decode()
        lines.append(line)
        if not line:
            raise AssertionError("uvicorn exited before serving:\n" + "".join(lines))
        if "Uvicorn running on unix socket" in line:
            return "".join(lines)


async def test_unix_socket_requests_share_one_quota_and_warn_once() -> None:
    """Untrusted socket peer: every client shares one quota; the warning is logged once."""
    async with uvicorn_on_unix_socket(trust_unix=False) as server:
        statuses = await server.statuses("198.51.100.1", "198.51.100.2", "198.51.100.3")
    assert [200, 200, 429] == statuses
    assert 1 == server.log.count(IDENTITY_WARNING), server.log


async def test_a_trusted_unix_socket_limits_each_forwarded_client() -> None:
    """With "unix" trusted, each client named by X-Forwarded-For has a quota of its own."""
    async with uvicorn_on_unix_socket(trust_unix=True) as server:
        statuses = await server.statuses("198.51.100.1", "198.51.100.1", "198.51.100.1")
        other = await server.statuses("198.51.100.2")
    assert ([200, 200, 429], [200]) == (statuses, other)
    assert 0 == server.log.count(IDENTITY_WARNING), server.log
