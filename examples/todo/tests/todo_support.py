"""Helpers shared by the Todo API's tests: tokens, problem checks, real server processes.

This directory has no `__init__.py` (the repository's root `tests` package owns that
name), so pytest puts it on `sys.path` and the tests import this module by its
unique name. The repository root is on `sys.path` too (`pythonpath` in
pyproject.toml), so `tests.support` (throwaway servers, free ports) is shared, not
copied.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Self
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer, free_port

from todo.auth import ADMIN, WRITE, issue_token

if TYPE_CHECKING:
    from pathlib import Path

    from todo.settings import Settings

__all__ = (
    "AppProcess",
    "UnixRedisServer",
    "WorkerProcess",
    "admin_headers",
    "assert_problem",
    "database_at",
    "drop_database",
    "eventually",
    "settings_env",
    "write_headers",
)

_START_TIMEOUT = 30.0


def database_at(dsn: str, name: str) -> str:
    """The DSN of database `name` on the server of `dsn`."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


async def drop_database(url: str) -> None:
    """Drop the database of `url`, closing whatever is still connected to it."""
    name = urlsplit(url).path.lstrip("/")
    connection = await asyncpg.connect(database_at(url, "postgres"))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def write_headers(settings: Settings) -> dict[str, str]:
    """Headers of a request allowed to change todos."""
    return {"authorization": f"Bearer {issue_token(settings, [WRITE])}"}


def admin_headers(settings: Settings) -> dict[str, str]:
    """Headers of a request allowed to delete every todo."""
    return {"authorization": f"Bearer {issue_token(settings, [WRITE, ADMIN])}"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    """Check the response is an RFC 9457 problem with this status; return its body."""
    assert status == response.status_code, response.text
    assert "application/problem+json" == response.headers["content-type"]
    body: dict[str, object] = response.json()
    assert status == body["status"]
    assert isinstance(body["title"], str)
    return body


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process read `settings` (the values tests vary)."""
    return {
        **os.environ,
        "TODO_ENV": settings.env,
        "TODO_DATABASE_URL": settings.database_url,
        "TODO_REDIS_URL": settings.redis_url,
        "TODO_NAMESPACE": settings.namespace,
        "TODO_AUTH": settings.auth,
        "TODO_JWT_SECRET": settings.jwt_secret,
        "TODO_RATE_LIMIT": f"{settings.rate_limit.limit}/{settings.rate_limit.period:g}s",
        "TODO_WRITE_RATE_LIMIT": (
            f"{settings.write_rate_limit.limit}/{settings.write_rate_limit.period:g}s"
        ),
        "TODO_CACHE_LOCAL_SIZE": str(settings.cache_local_size),
        "TODO_METRICS_ADDRESS": settings.metrics_address or "",
    }


class AppProcess:
    """A real `uvicorn --factory todo.app:create_app` process on a free port.

    Args:
        settings: What the process reads from its environment.
        log: Where its output goes.
    """

    def __init__(self, settings: Settings, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._settings = settings
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        command = [
            sys.executable, "-m", "uvicorn", "--factory", "todo.app:create_app",
            "--port", str(self.port), "--no-access-log",
        ]  # fmt: skip
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                command, env=settings_env(self._settings), stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_started()
        return self

    def _wait_started(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"the app exited: {self._log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health/startup", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the app did not start: {self._log.read_text()}")
            time.sleep(0.05)

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)


class WorkerProcess:
    """A real `scalepy worker todo.worker:queue` process, with the todo worker's hooks.

    Args:
        settings: What the process reads from its environment.
        log: Where its output goes.
        grace: Its `--grace`: seconds running jobs may finish once it is told to stop.
    """

    def __init__(self, settings: Settings, log: Path, *, grace: float = 0.0) -> None:
        self.log = log
        self._settings = settings
        self._grace = grace
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        command = [
            sys.executable, "-m", "scalepy.cli", "worker", "todo.worker:queue",
            "--startup", "todo.worker:startup", "--shutdown", "todo.worker:shutdown",
            "--concurrency", "4", "--status-interval", "0", "--grace", str(self._grace),
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                command, env=settings_env(self._settings), stdout=log, stderr=subprocess.STDOUT
            )
        # Its first line comes once it handles SIGTERM, right before it starts claiming.
        deadline = time.monotonic() + _START_TIMEOUT
        while b"worker for queue" not in self.log.read_bytes():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start: {self.log.read_text()}")
            time.sleep(0.05)
        return self

    def stop(self) -> float:
        """SIGTERM (a graceful stop, then the shutdown hook); seconds until it exited 0."""
        assert self._process is not None
        sent = time.monotonic()
        if self._process.poll() is None:
            self._process.terminate()
        assert 0 == self._process.wait(timeout=30), self.log.read_text()
        return time.monotonic() - sent

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self.stop()


class UnixRedisServer(RedisServer):
    """A redis-server of the test's own on a Unix socket only (no TCP port to pick).

    Args:
        socket: The socket's path, the same across restarts: `url` reconnects to it.
    """

    def __init__(self, socket: Path) -> None:
        super().__init__(socket.parent, "--port", "0", "--unixsocket", str(socket), port=0)
        self.socket = socket

    @property
    def url(self) -> str:
        """`unix://<socket>`."""
        return f"unix://{self.socket}"

    def start(self) -> None:
        """Start the server; return once it says it accepts connections on the socket."""
        command = ["redis-server", "--save", "", "--dir", str(self.directory), *self.options]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert process.stdout is not None
        log = b""
        for line in process.stdout:  # its own log tells when it is ready
            log += line
            if b"ready to accept connections at" in line:
                self._process = process
                return
        process.wait()
        raise RuntimeError(f"redis-server did not start: {log.decode(errors='replace')}")
