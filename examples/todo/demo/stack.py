"""The Todo API stack on this machine: relay, migrations, replicas, worker, nginx.

`Stack.start()` brings it up and waits until every part answers; `Stack.stop()` stops
every process it started, whatever state the start reached. Everything lives in one
temporary directory: the replicas' Unix sockets, nginx's prefix, the logs.

Why Unix sockets between nginx and the replicas: no TCP port to find free per replica
on a shared machine (only nginx's port is visible), and only nginx can reach them (the
directory is private), so the replicas can trust the forwarded headers of every Unix
socket peer (`TODO_TRUSTED_PROXIES=unix`) where trusting 127.0.0.1 would let any
local process forge a client address and dodge the rate limiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import httpx

from demo import nginx
from demo.processes import Child, ChildFailed, run, spawn
from demo.relay import Relay
from scalepy.backends.redis import RedisClient
from scalepy.errors import ScalepyError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = ("Options", "Stack")

_STARTUP_TIMEOUT = 60.0
_POLL = 0.05
_DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/todo_demo"
_DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Small enough that the tour sees each primitive act within seconds.
_DEMO_SETTINGS = {
    "TODO_ENV": "dev",
    "TODO_AUTH": "jwt",
    "TODO_WRITE_RATE_LIMIT": "10/second",
    "TODO_DB_BREAKER_OPEN_FOR": "2",
    "TODO_DB_BREAKER_MINIMUM_CALLS": "4",
    # The rolling restart closes a replica to nginx itself: no load balancer to wait for.
    "TODO_DRAIN_DELAY": "1",
}


@dataclass(frozen=True)
class Options:
    """What to run: `replicas` behind nginx on `port`, or one process (`single`) on it.

    Port 0 picks a free port (for CI on a shared machine).
    """

    replicas: int = 3
    port: int = 8080
    single: bool = False
    settings: Mapping[str, str] = field(default_factory=dict)
    """`TODO_*` variables for every process, over the demo's own (e.g. `TODO_AUTH=none`)."""
    worker_options: Sequence[str] = ()
    """More `scalepy worker` options (e.g. a short `--lease` for a test that kills it)."""


@dataclass
class Stack:
    """The processes of one demo run, and what the tour needs to know about them."""

    options: Options
    say: Callable[[str], None]
    run_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="todo-demo.")))
    relay: Relay | None = None
    database_url: str = ""
    """PostgreSQL itself (the replicas and the worker reach it through the relay)."""
    env: dict[str, str] = field(default_factory=dict)
    replicas: dict[str, Path] = field(default_factory=dict)
    """Replica name -> its Unix socket (empty in single mode)."""
    children: list[Child] = field(default_factory=list)
    nginx_log: Path | None = None
    worker_metrics: str = ""
    """`host:port` where the worker serves its `/metrics` (`TODO_METRICS_ADDRESS`)."""
    _own_namespace: bool = field(default=False, init=False)
    port: int = 0
    """The port clients use (`options.port`, or the free one picked for 0)."""

    @property
    def base_url(self) -> str:
        """Where clients reach the service: nginx, or the single process."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def logs(self) -> Path:
        """The directory of every process's log."""
        return self.run_dir / "logs"

    @property
    def nginx_prefix(self) -> Path:
        """The directory nginx runs in: its config, pid file and temporary files."""
        return self.run_dir / "nginx"

    def child(self, name: str) -> Child:
        """The running child called `name`."""
        return next(child for child in self.children if child.name == name)

    async def start(self) -> None:
        """Bring everything up in order; raise `ChildFailed` naming the part that did not."""
        self.port = _free_port(self.options.port)
        self.logs.mkdir()
        await self._start_relay()
        self.say("migrating the database (python -m todo migrate)")
        await run("migrate", [sys.executable, "-m", "todo", "migrate"], self.env, self.logs)
        if self.options.single:
            await self._start_single()
        else:
            await self._start_replicas()
            await self.start_worker()
            await self._start_nginx()

    async def stop(self) -> list[str]:
        """Stop every child (nginx first, the rest at once), the relay; delete the directory.

        Returns:
            The names of the children stopped.
        """
        stopped = [child.name for child in self.children]
        front = [child for child in self.children if child.name == "nginx"]
        rest = [child for child in self.children if child.name != "nginx"]
        for group in (front, rest):
            await asyncio.gather(*(child.stop() for child in group))
        self.children.clear()
        if self.relay is not None:
            await self.relay.aclose()
            self.relay = None
        shutil.rmtree(self.run_dir, ignore_errors=True)
        if self._own_namespace and not self.env["TODO_REDIS_URL"].startswith("memory://"):
            try:
                await _delete_keys(self.env["TODO_REDIS_URL"], self.env["TODO_NAMESPACE"])
            except ScalepyError as exc:  # Redis went away: the keys stay, nothing else does
                self.say(f"could not delete the Redis keys of {self.env['TODO_NAMESPACE']}: {exc}")
        return stopped

    async def mint_token(self, *scopes: str, ttl: int | None = None) -> str:
        """A bearer token from `python -m todo token` (signed with this run's secret)."""
        argv = [sys.executable, "-m", "todo", "token"]
        for scope in scopes:
            argv += ["--scope", scope]
        if ttl is not None:
            argv += ["--ttl", str(ttl)]
        output = await run("token", argv, self.env, self.logs, within=30.0)
        return output.strip().splitlines()[-1]

    async def _start_relay(self) -> None:
        self.database_url = os.environ.get("TODO_DATABASE_URL", _DEFAULT_DATABASE_URL)
        target = urlsplit(self.database_url)
        if target.hostname is None:
            raise ChildFailed(f"TODO_DATABASE_URL needs a host:port for the relay: {target}")
        await _check_answers(target.hostname, target.port or 5432)
        self.relay = Relay(target.hostname, target.port or 5432)
        await self.relay.start()
        userinfo = target.netloc.rpartition("@")[0]
        relayed = f"{userinfo}@" if userinfo else ""
        relayed += f"127.0.0.1:{self.relay.listen_port}"
        # A namespace of its own, unless given one: two stacks on one Redis (CI's tour
        # while someone runs the demo) share no rate limit, breaker, cache or queue.
        self._own_namespace = "TODO_NAMESPACE" not in {**os.environ, **self.options.settings}
        self.env = {
            **os.environ,
            **_DEMO_SETTINGS,
            "TODO_DATABASE_URL": urlunsplit(target._replace(netloc=relayed)),
            "TODO_REDIS_URL": os.environ.get("TODO_REDIS_URL", _DEFAULT_REDIS_URL),
            "TODO_NAMESPACE": os.environ.get("TODO_NAMESPACE", f"demo-{secrets.token_hex(4)}"),
            "TODO_JWT_SECRET": secrets.token_urlsafe(32),
            "TODO_DRAIN_TOKEN": secrets.token_urlsafe(32),
            "TODO_LOG_LEVEL": os.environ.get("TODO_LOG_LEVEL", "INFO"),
            **self.options.settings,
        }
        self.say(
            f"postgres {target.hostname}:{target.port or 5432}{target.path} through a relay "
            f"on 127.0.0.1:{self.relay.listen_port} (the tour cuts it to trip the breaker)"
        )

    async def _start_single(self) -> None:
        self.env["TODO_REDIS_URL"] = "memory://"
        self.say(f"starting one process on {self.base_url} (TODO_REDIS_URL=memory://)")
        app = await spawn(
            "app", [*_uvicorn(), "--host", "127.0.0.1", "--port", str(self.port)],
            self.env, self.logs,
        )  # fmt: skip
        self.children.append(app)
        await _wait_until_ok(app, self.base_url + "/health/ready")

    async def _start_replicas(self) -> None:
        sockets = self.run_dir / "sockets"
        sockets.mkdir()
        account = nginx.unprivileged_account()
        if account is not None:  # root: nginx runs as nobody and must reach the sockets
            self.run_dir.chmod(0o711)
            os.chown(sockets, -1, account.pw_gid)
            sockets.chmod(0o750)
        self.env["TODO_TRUSTED_PROXIES"] = "unix"
        count = self.options.replicas
        self.say(f"starting {count} replicas (uvicorn on Unix sockets in {sockets})")
        self.replicas = {f"app-{n}": sockets / f"app-{n}.sock" for n in range(1, count + 1)}
        await asyncio.gather(*(self.start_replica(name) for name in self.replicas))

    async def start_replica(self, name: str) -> Child:
        """Start replica `name` on its socket; return once it is ready for requests."""
        path = self.replicas[name]
        child = await spawn(name, [*_uvicorn(), "--uds", str(path)], self.env, self.logs)
        self.children.append(child)
        await _wait_until_ok(child, "http://replica/health/startup", uds=path)
        await _wait_until_ok(child, "http://replica/health/ready", uds=path)
        return child

    async def start_worker(self) -> Child:
        """Start the worker (again, after it died: on the same metrics address)."""
        self.say("starting the worker (scalepy worker todo.worker:queue)")
        argv = [
            sys.executable, "-m", "scalepy.cli", "worker", "todo.worker:queue",
            "--startup", "todo.worker:startup", "--shutdown", "todo.worker:shutdown",
            "--status-interval", "0", *self.options.worker_options,
        ]  # fmt: skip
        # Its only HTTP listener, for Prometheus (demo/prometheus.py) or a curl.
        self.worker_metrics = self.worker_metrics or f"127.0.0.1:{_free_port(0)}"
        env = {**self.env, "TODO_METRICS_ADDRESS": self.worker_metrics}
        worker = await spawn("worker", argv, env, self.logs)
        self.children.append(worker)
        return worker

    async def _start_nginx(self) -> None:
        prefix = self.nginx_prefix
        prefix.mkdir()
        nginx.write_config(prefix, f"127.0.0.1:{self.port}", list(self.replicas.values()))
        account = nginx.unprivileged_account()
        if account is not None:  # it opens /dev/stdout (its access log): it must own the file
            for name in ("nginx-test", "nginx"):
                (self.logs / f"{name}.log").touch()
                os.chown(self.logs / f"{name}.log", account.pw_uid, account.pw_gid)
        await run("nginx-test", nginx.command(prefix, test=True), self.env, self.logs)
        self.say(f"nginx -t: {prefix / 'nginx.conf'} is valid; starting nginx on {self.base_url}")
        front = await spawn("nginx", nginx.command(prefix), self.env, self.logs)
        self.children.append(front)
        self.nginx_log = front.log
        await _wait_until_ok(front, self.base_url + "/health/live")


def _uvicorn() -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "--factory", "todo.app:create_app",
        "--no-proxy-headers",  # the app decides which forwarded headers to trust
        "--no-access-log",  # nginx logs every request
        "--timeout-keep-alive", "75",  # longer than nginx's upstream keepalive_timeout
        "--timeout-graceful-shutdown", "5",
    ]  # fmt: skip


async def _delete_keys(redis_url: str, namespace: str) -> None:
    """Delete the Redis keys of a namespace the demo made up (it is unique to this run)."""
    async with RedisClient.from_url(redis_url) as client:
        keys = [key async for key in client.redis.scan_iter(match=f"*{namespace}*", count=1000)]
        for key in keys:  # one at a time: on a cluster they may live in any slot
            await client.redis.delete(key)


async def _check_answers(host: str, port: int) -> None:
    """Fail with a clear message now if PostgreSQL does not accept connections.

    Behind the relay, the migration would only see connections reset.
    """
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5.0)
    except (OSError, TimeoutError) as exc:
        raise ChildFailed(
            f"PostgreSQL on {host}:{port} does not answer ({str(exc) or 'timed out'}): "
            "start it (scripts/services.sh start) or set TODO_DATABASE_URL"
        ) from None
    writer.close()
    await writer.wait_closed()


def _free_port(port: int) -> int:
    """`port` if it is free on 127.0.0.1, or a free one the kernel picks for 0."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nginx and uvicorn do
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ChildFailed(
                f"port {port} is not free ({exc.strerror}): pick another with --port"
            ) from None
        free: int = probe.getsockname()[1]
        return free


async def _wait_until_ok(child: Child, url: str, *, uds: Path | None = None) -> None:
    """Poll `url` (a process outside this one: no event to await) until it answers 200."""
    transport = httpx.AsyncHTTPTransport(uds=str(uds)) if uds else None
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    async with httpx.AsyncClient(transport=transport, timeout=2.0) as client:
        while True:
            child.check_running()
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(url)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise ChildFailed(
                    f"{child.name} did not answer {url} within {_STARTUP_TIMEOUT:g} s; "
                    f"last lines of {child.log}:\n{child.tail()}"
                )
            await asyncio.sleep(_POLL)
