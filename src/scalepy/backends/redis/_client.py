"""`RedisClient`: the one Redis connection layer the cache, rate limiter and queue share."""

from __future__ import annotations

import asyncio
import functools
import ssl
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from redis.crc import key_slot

from scalepy._lifecycle import LIFECYCLE_SLOTS, AsyncResource
from scalepy._loop import PerLoop
from scalepy._validation import check_finite
from scalepy.backends._masking import mask_url
from scalepy.backends._url import (
    BackendConfig,
    MemoryConfig,
    RedisClusterConfig,
    RedisConfig,
    parse_backend_url,
)
from scalepy.backends.redis._cluster import ClusterRouter
from scalepy.backends.redis._errors import ScriptNotLoaded
from scalepy.backends.redis._metrics import PIPELINE_SIZE
from scalepy.backends.redis._node import Node
from scalepy.backends.redis._pipeline import AutoPipeline, PipelineStatistics
from scalepy.backends.redis._resp import Endpoint
from scalepy.errors import BackendError, ConfigurationError
from scalepy.telemetry import get_default

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster
    from redis.typing import EncodableT

    from scalepy.backends.redis._resp import RespConnection
    from scalepy.backends.redis._scripts import Script
    from scalepy.telemetry import Instrumentation

__all__ = ("RedisClient", "RedisClientStatistics")


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisClientStatistics:
    """A snapshot of a `RedisClient`'s activity."""

    backend: str
    """The server's URL, password masked."""
    pipeline: PipelineStatistics
    """Automatic pipelining counters."""
    script_reloads: int
    """Scripts resent because the server had lost them (NOSCRIPT)."""


class RedisClient(AsyncResource):
    """Redis with automatic pipelining, bounded timeouts and self-healing Lua scripts.

    Commands issued concurrently within one event-loop tick reach Redis as one
    pipeline, over one multiplexed connection per server; each caller still gets
    its own reply or its own error. A lone caller's command (the connection owes
    no reply, the previous tick held one call) is written at once instead.
    The connection speaks RESP3, so it carries the process's `Subscription`s too
    (a server refusing RESP3 gets a second connection for them). Every call is
    bounded by the configured `timeout`, and failures are scalepy errors:
    `BackendTimeout`, `BackendUnavailable` or `BackendCommandError`. A lost connection is reopened
    by the next command. Its connections belong to the running event loop: used
    from another loop (a second `asyncio.run()`, a test's loop), it connects again
    there, and the earlier loop's connections close on that loop. So `open()`
    does nothing (commands connect; `ping()` is the startup check) and `aclose()`
    closes once, however often or concurrently it is called.

    Replies are raw values in their RESP2 shapes: `bytes` for strings, status
    replies (`b"OK"`) and doubles, `int`, `list` (a map is a flat list of keys and
    values) and `None`.

    One client serves every primitive of a process (`Cache(client)`,
    `RateLimiter(client)`, `Queue(client)`, `RedisSharedState(client)`); each
    keeps its own timeout through `with_timeout`, a view sharing the connections.

    Args:
        config: The server or cluster to talk to (see `parse_backend_url`).
        instrumentation: Where metrics go; the process default when `None`.

    Raises:
        ConfigurationError: `config` is not a parsed configuration; a URL goes to
            `RedisClient.from_url()`.

    Example:
        ```python
        async with RedisClient.from_url("redis://localhost:6379/0") as redis:
            await redis.execute("SET", "greeting", "hello")
            assert await redis.execute("GET", "greeting") == b"hello"
        ```
    """

    __slots__ = (
        *LIFECYCLE_SLOTS,
        "_close_parent",
        "_config",
        "_is_cluster",
        "_parent",
        "_pipeline",
        "_redis",
        "_script_reloads",
        "_timeout",
    )

    def __init__(
        self,
        config: RedisConfig | RedisClusterConfig,
        *,
        instrumentation: Instrumentation | None = None,
    ) -> None:
        _check_config(config)
        self._config = config
        self._parent: RedisClient | None = None  # set on a `with_timeout` view
        self._close_parent = False
        self._timeout: float | None = None  # None: the pipeline's own, `config.timeout`
        self._redis: PerLoop[Redis | RedisCluster] = PerLoop(
            functools.partial(_redis_py_client, config), _close_redis_py, name="scalepy.redis.py"
        )
        self._script_reloads = 0
        backend = str(config)
        dispatcher: Callable[[], Node | ClusterRouter]
        if isinstance(config, RedisClusterConfig):
            self._is_cluster = True
            template = _endpoint(config)
            seeds = [Endpoint(host=host, port=port) for host, port in config.nodes]
            dispatcher = functools.partial(
                ClusterRouter, seeds, template=template, backend=backend, timeout=config.timeout
            )
        else:
            self._is_cluster = False
            dispatcher = functools.partial(Node, _endpoint(config), backend=backend)
        self._pipeline = AutoPipeline(
            dispatcher,
            timeout=config.timeout,
            backend=backend,
            batch_sizes=(instrumentation or get_default()).metric(PIPELINE_SIZE),
        )

    @classmethod
    def from_url(
        cls,
        url: str | BackendConfig,
        *,
        instrumentation: Instrumentation | None = None,
    ) -> RedisClient:
        """Create a client from a URL or a parsed configuration.

        Args:
            url: A `redis://`, `rediss://`, `unix://` or `redis+cluster://` URL.
            instrumentation: Where metrics go; the process default when `None`.

        Returns:
            A client; it connects on first use.

        Raises:
            InvalidBackendURL: The URL cannot be parsed.
            ConfigurationError: The URL names a backend that is not Redis.
        """
        config = parse_backend_url(url) if isinstance(url, str) else url
        if isinstance(config, MemoryConfig):
            raise ConfigurationError("RedisClient needs a Redis URL, got memory://")
        return cls(config, instrumentation=instrumentation)

    @property
    def config(self) -> RedisConfig | RedisClusterConfig:
        """The configuration this client was built from."""
        return self._config

    @property
    def is_cluster(self) -> bool:
        """Whether the server is a Redis Cluster."""
        return self._is_cluster

    def with_timeout(self, seconds: float, *, close_parent: bool = False) -> RedisClient:
        """Return a view of this client whose commands wait at most `seconds`.

        The view shares this client's connections, scripts and instrumentation:
        it is how primitives sharing one client keep their own timeouts (a cache
        at 0.1 s, a queue at 1 s) over one connection per server.

        Args:
            seconds: The view's per-command timeout; a finite number > 0.
            close_parent: Closing the view closes this client too (for a primitive
                given the client with `owns_client=True`). By default closing a view
                releases nothing: the connections belong to this client.

        Returns:
            The view; its `config.timeout` is `seconds`.

        Raises:
            ConfigurationError: `seconds` is not a finite number > 0.
        """
        check_finite("timeout", seconds)
        root = self._parent or self
        view = object.__new__(RedisClient)
        view._config = replace(root._config, timeout=seconds)
        view._parent = root
        view._close_parent = close_parent
        view._timeout = seconds
        view._is_cluster = root._is_cluster
        view._pipeline = root._pipeline
        view._redis = root._redis
        return view

    @property
    def redis(self) -> Redis | RedisCluster:
        """A redis-py client for the same server, created on first use and closed with this.

        Use it for what needs a connection of its own: blocking commands, commands
        that must reach every cluster node. Plain commands are faster through
        `execute`, and pub/sub goes through `Subscription`, on this client's
        connections. Like the client's own connections, it belongs to the
        running event loop: another loop gets another one.

        Raises:
            RuntimeError: No event loop is running.
        """
        return self._redis.get(asyncio.get_running_loop())

    async def execute(self, *command: EncodableT) -> Any:
        """Run one command, pipelined with whatever else this tick sends.

        Args:
            *command: The command name and its arguments, e.g. `"GET", "key"`.

        Returns:
            The raw reply.

        Raises:
            BackendTimeout: No reply within the timeout.
            BackendUnavailable: The server cannot be reached, or the client is closed.
            BackendCommandError: The server rejected the command.
        """
        return await self._pipeline.submit(command, timeout=self._timeout)

    async def execute_many(self, *commands: tuple[EncodableT, ...]) -> list[Any]:
        """Run several commands in one round trip, back to back and in order.

        Like gathering `execute` calls, without a task per command: the commands
        are written together (at once on an idle connection, else with this tick's
        pipeline), so a server runs them one after the other (other clients'
        commands may still run between them).

        Args:
            *commands: Each a command name and its arguments.

        Returns:
            The raw replies, in the order of `commands`.

        Raises:
            BackendTimeout: No reply within the timeout.
            BackendUnavailable: The server cannot be reached, or the client is closed.
            BackendCommandError: The server rejected one of the commands.
        """
        futures = self._pipeline.submit_many(commands, timeout=self._timeout)
        try:
            return [await future for future in futures]
        except BaseException:
            for future in futures:  # the replies nobody will read: no "never retrieved" log
                if not future.done():
                    future.cancel()
                elif not future.cancelled():
                    future.exception()
            raise

    async def run_script(
        self,
        script: Script,
        keys: Sequence[str] = (),
        args: Sequence[EncodableT] = (),
    ) -> Any:
        """Run a Lua script with EVALSHA, resending its body if the server lost it.

        Args:
            script: The script to run.
            keys: The keys it touches; on a cluster they must share one hash tag.
            args: Its other arguments.

        Returns:
            The script's raw reply.

        Raises:
            ConfigurationError: On a cluster, the keys live in different slots.
            BackendTimeout: No reply within the timeout.
            BackendUnavailable: The server cannot be reached.
            BackendCommandError: The script raised an error.
        """
        if self._is_cluster and len(keys) > 1:
            _check_one_slot(script, keys)
        timeout = self._timeout
        try:
            return await self._pipeline.submit(
                ("EVALSHA", script.sha, len(keys), *keys, *args), timeout=timeout
            )
        except ScriptNotLoaded:
            (self._parent or self)._script_reloads += 1
            return await self._pipeline.submit(
                ("EVAL", script.source, len(keys), *keys, *args), timeout=timeout
            )

    def submit_script(
        self,
        script: Script,
        keys: Sequence[str],
        args: Callable[[], Sequence[EncodableT] | None],
        done: Callable[[asyncio.Future[Any]], None],
    ) -> None:
        """Queue a Lua script whose arguments are asked for when this tick's pipeline is written.

        Like `run_script`, without awaiting: `args` is called once, after every task
        woken in this tick has run, so the tasks of one tick can add to one call
        (the rate limiter's coalesced decisions). A script the server lost is resent.

        Args:
            script: The script to run.
            keys: The keys it touches; on a cluster they must share one hash tag.
            args: Returns the script's other arguments, or `None` to withdraw the
                call (the future `done` gets is then cancelled).
            done: Called once with a future settled with the script's raw reply,
                or with the errors `run_script` raises (`BackendTimeout`,
                `BackendUnavailable`, `BackendCommandError`) or one `args` raised.

        Raises:
            ConfigurationError: On a cluster, the keys live in different slots.
            BackendUnavailable: The client has been closed.
        """
        if self._is_cluster and len(keys) > 1:
            _check_one_slot(script, keys)
        call = _ScriptCall(self, script, keys, args, done)
        self._pipeline.submit_deferred(call.build, timeout=self._timeout).add_done_callback(call)

    async def ping(self) -> bool:
        """Return `True` when the server answers PING in time.

        Raises:
            BackendTimeout: No reply within the timeout.
            BackendUnavailable: The server cannot be reached.
        """
        return bool(await self.execute("PING"))

    async def _subscriber(self, channel: bytes, *, redirect: str | None) -> RespConnection:
        """The open connection to carry `channel`'s subscription (see `Subscription`).

        The connection of the server (on a cluster: of the node owning the channel's
        slot, or of the node a `MOVED` reply `redirect` named) that carries this
        loop's commands, unless that server refused RESP3.

        Raises:
            BackendError: The server cannot be reached or refused the login.
        """
        return await self._pipeline.dispatcher().subscriber(channel, redirect=redirect)

    def statistics(self) -> RedisClientStatistics:
        """Return a snapshot of the client's counters."""
        return RedisClientStatistics(
            backend=str(self._config),
            pipeline=self._pipeline.statistics(),
            script_reloads=(self._parent or self)._script_reloads,
        )

    async def _aclose(self) -> None:
        """Send what was submitted, wait for the replies (up to the timeout), then close.

        A `with_timeout` view closes nothing of its own: its parent's connections
        stay open, unless the view was made with `close_parent=True`.
        """
        if self._parent is not None:
            if self._close_parent:
                await self._parent.aclose()
            return
        await self._pipeline.aclose()
        await self._redis.aclose()

    def __repr__(self) -> str:
        stats = self._pipeline.statistics()
        view = "" if self._parent is None else f" view timeout={self._timeout}"
        return (
            f"<RedisClient {self._config}{view} commands={stats.commands} "
            f"batches={stats.batches} waiting={stats.waiting}>"
        )


def _endpoint(config: RedisConfig | RedisClusterConfig) -> Endpoint:
    context: ssl.SSLContext | None = None
    if config.ssl:
        context = ssl.create_default_context(cafile=config.ssl_ca_certs)
        if config.ssl_cert_reqs != "required":
            context.check_hostname = False
            context.verify_mode = (
                ssl.CERT_OPTIONAL if config.ssl_cert_reqs == "optional" else ssl.CERT_NONE
            )
    common: dict[str, Any] = {
        "ssl_context": context,
        "username": config.username,
        "password": config.password,
        "client_name": config.client_name,
        "connect_timeout": config.connect_timeout,
    }
    if isinstance(config, RedisClusterConfig):
        return Endpoint(**common)
    return Endpoint(
        host=config.host,
        port=config.port,
        unix_socket_path=config.unix_socket_path,
        db=config.db,
        **common,
    )


def _redis_py_client(config: RedisConfig | RedisClusterConfig) -> Redis | RedisCluster:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    common: dict[str, Any] = {
        "username": config.username,
        "password": config.password,
        "socket_connect_timeout": config.connect_timeout,
        "client_name": config.client_name,
        "max_connections": config.max_connections,
    }
    if config.ssl:
        common |= {
            "ssl": True,
            "ssl_cert_reqs": config.ssl_cert_reqs,
            "ssl_ca_certs": config.ssl_ca_certs,
        }
    if isinstance(config, RedisClusterConfig):
        nodes = [ClusterNode(host, port) for host, port in config.nodes]
        return RedisCluster(startup_nodes=nodes, **common)
    if config.unix_socket_path is not None:
        return Redis(unix_socket_path=config.unix_socket_path, db=config.db, **common)
    return Redis(host=config.host, port=config.port, db=config.db, **common)


async def _close_redis_py(client: Redis | RedisCluster) -> None:
    await client.aclose()


class _ScriptCall:
    """One `submit_script` call: builds its command at the flush, resends it after NOSCRIPT.

    A plain object, not closures: closures calling themselves would form a reference
    cycle per call, left to the garbage collector.
    """

    __slots__ = ("_args", "_client", "_done", "_keys", "_script", "_sent")

    def __init__(
        self,
        client: RedisClient,
        script: Script,
        keys: Sequence[str],
        args: Callable[[], Sequence[EncodableT] | None],
        done: Callable[[asyncio.Future[Any]], None],
    ) -> None:
        self._client = client
        self._script = script
        self._keys = keys
        self._args = args
        self._done = done
        self._sent: Sequence[EncodableT] = ()

    def build(self) -> tuple[EncodableT, ...] | None:
        """The EVALSHA command, or `None` when the caller withdraws it."""
        args = self._args()
        if args is None:
            return None
        self._sent = args
        keys = self._keys
        return ("EVALSHA", self._script.sha, len(keys), *keys, *args)

    def __call__(self, reply: asyncio.Future[Any]) -> None:
        """Hand the reply to the caller, or resend the whole script once after NOSCRIPT."""
        if reply.cancelled() or not isinstance(reply.exception(), ScriptNotLoaded):
            self._done(reply)
            return
        client = self._client
        (client._parent or client)._script_reloads += 1
        keys = self._keys
        command = ("EVAL", self._script.source, len(keys), *keys, *self._sent)
        try:
            resent = client._pipeline.submit(command, timeout=client._timeout)
        except BackendError:  # closed meanwhile: the caller gets the NOSCRIPT reply's error
            self._done(reply)
        else:
            resent.add_done_callback(self._done)


def _check_one_slot(script: Script, keys: Sequence[str]) -> None:
    slots = {key_slot(key.encode()) for key in keys}
    if len(slots) > 1:
        raise ConfigurationError(
            f"script {script.name!r} got keys in {len(slots)} cluster slots; give every key "
            f"of one call the same hash tag (see scalepy.backends.KeySpace): {list(keys)}"
        )


def _check_config(config: object) -> None:
    """Refuse what is not a parsed configuration, naming `from_url` for a URL."""
    if isinstance(config, RedisConfig | RedisClusterConfig):
        return
    if isinstance(config, str):
        raise ConfigurationError(
            f"RedisClient takes a parsed configuration; for a URL write "
            f"RedisClient.from_url({mask_url(config)!r})"
        )
    raise ConfigurationError(
        f"RedisClient takes a RedisConfig or RedisClusterConfig "
        f"(see parse_backend_url), got a {type(config).__name__}"
    )
