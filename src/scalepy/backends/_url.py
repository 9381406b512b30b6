"""Backend URLs parsed into small, frozen, validated configuration objects.

Accepted forms:

- `memory://`: in-process state, one process, no infrastructure.
- `redis://[[user]:password@]host[:port][/db]` and `rediss://…` (TLS).
- `unix://[[user]:password@]/path/to/redis.sock[?db=N]`.
- `redis+cluster://[[user]:password@]host:port[,host:port…]` and `rediss+cluster://…`.

The user info ends at the last `@`, so a password may hold `/`, `?`, `#`, `:` or `@`
unencoded (percent-encoded characters are decoded); an `@` after the host must be
written `%40`. Every error names the URL with `mask_url()` applied.

Every Redis form accepts the query options `connect_timeout`, `timeout` (seconds,
per command), `max_connections` and `client_name`; TLS forms also take
`ssl_cert_reqs` (`required`, `optional`, `none`) and `ssl_ca_certs`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from scalepy._validation import check_finite
from scalepy.backends._masking import mask_url, split_userinfo
from scalepy.errors import ConfigurationError, InvalidBackendURL

__all__ = (
    "BackendConfig",
    "MemoryConfig",
    "RedisClusterConfig",
    "RedisConfig",
    "none_hint",
    "parse_backend_url",
    "split_host",
    "split_userinfo",
)

SslCertReqs = Literal["required", "optional", "none"]
_Config = TypeVar("_Config", "RedisConfig", "RedisClusterConfig")

_DEFAULT_REDIS_PORT = 6379
_SCHEMES = ("memory", "redis", "rediss", "unix", "redis+cluster", "rediss+cluster")


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryConfig:
    """State kept in the current process only (`memory://`)."""

    def __str__(self) -> str:
        return "memory://"


@dataclass(frozen=True, slots=True, kw_only=True)
class _RedisOptions:
    """Options shared by standalone and cluster Redis configurations."""

    username: str | None = None
    """ACL user name; `None` means the default user."""
    password: str | None = field(default=None, repr=False)
    """Password; never shown in `repr()` or `str()`."""
    ssl: bool = False
    """Connect with TLS (`rediss://`)."""
    ssl_cert_reqs: SslCertReqs = "required"
    """Whether the server certificate must be verified (TLS only)."""
    ssl_ca_certs: str | None = None
    """Path of a CA bundle used to verify the server (TLS only)."""
    connect_timeout: float = 2.0
    """Seconds allowed to open a connection."""
    timeout: float = 1.0
    """Seconds allowed for one command (or one pipeline) to be answered."""
    max_connections: int = 50
    """Upper bound of connections per server for `RedisClient.redis` (pub/sub, blocking
    commands); scalepy's own commands share one multiplexed connection per server."""
    client_name: str | None = None
    """Name shown by `CLIENT LIST`, handy when debugging a shared server."""

    def __post_init__(self) -> None:
        check_finite("connect_timeout", self.connect_timeout)
        check_finite("timeout", self.timeout)
        if self.max_connections < 1:
            raise ConfigurationError(f"max_connections must be >= 1, got {self.max_connections!r}")
        if self.ssl_cert_reqs not in ("required", "optional", "none"):
            raise ConfigurationError(
                f"ssl_cert_reqs must be 'required', 'optional' or 'none', "
                f"got {self.ssl_cert_reqs!r}"
            )

    def _userinfo(self) -> str:
        if self.username is None and self.password is None:
            return ""
        user = quote(self.username or "", safe="")
        return f"{user}:***@" if self.password is not None else f"{user}@"


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisConfig(_RedisOptions):
    """One Redis server (`redis://`, `rediss://` or `unix://`)."""

    host: str = "127.0.0.1"
    """Host name or IP address; ignored when `unix_socket_path` is set."""
    port: int = _DEFAULT_REDIS_PORT
    """TCP port."""
    db: int = 0
    """Logical database number."""
    unix_socket_path: str | None = None
    """Path of a Unix domain socket, used instead of host and port."""

    def __post_init__(self) -> None:
        _RedisOptions.__post_init__(self)
        _check_port(self.port)
        if self.db < 0:
            raise ConfigurationError(f"db must be >= 0, got {self.db!r}")

    def __str__(self) -> str:
        """The URL with the password masked, safe for logs and errors."""
        if self.unix_socket_path is not None:
            return f"unix://{self._userinfo()}{self.unix_socket_path}?db={self.db}"
        scheme = "rediss" if self.ssl else "redis"
        return f"{scheme}://{self._userinfo()}{_join_host(self.host, self.port)}/{self.db}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisClusterConfig(_RedisOptions):
    """A Redis Cluster reached through one or more startup nodes (`redis+cluster://`)."""

    nodes: tuple[tuple[str, int], ...]
    """Startup nodes as `(host, port)`; the client discovers the others."""

    def __post_init__(self) -> None:
        _RedisOptions.__post_init__(self)
        if not self.nodes:
            raise ConfigurationError("a Redis Cluster needs at least one startup node")
        for _, port in self.nodes:
            _check_port(port)

    def __str__(self) -> str:
        """The URL with the password masked, safe for logs and errors."""
        scheme = "rediss+cluster" if self.ssl else "redis+cluster"
        hosts = ",".join(_join_host(host, port) for host, port in self.nodes)
        return f"{scheme}://{self._userinfo()}{hosts}"


BackendConfig = MemoryConfig | RedisConfig | RedisClusterConfig
"""Any parsed backend URL."""


def parse_backend_url(url: str) -> BackendConfig:
    """Parse a backend URL into its typed configuration.

    Args:
        url: One of the forms listed in this module's docstring.

    Returns:
        A `MemoryConfig`, `RedisConfig` or `RedisClusterConfig`.

    Raises:
        InvalidBackendURL: The URL is malformed or uses an unknown scheme or option,
            or is not a string; the message says what is accepted. Passwords never
            appear in it.
    """
    given: object = url  # checked as given, whatever the annotation says
    if not isinstance(given, str):
        raise InvalidBackendURL(repr(given), f"a backend URL is a string{none_hint(given)}")
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _SCHEMES:
        raise InvalidBackendURL(
            mask_url(url),
            "the scheme must be one of " + ", ".join(f"{name}://" for name in _SCHEMES),
        )
    try:
        if scheme == "memory":
            if rest.strip("/"):
                raise ValueError("memory:// takes no host, path or options")
            return MemoryConfig()
        # Parsed without the user info: no message below can quote a piece of the password.
        userinfo, location = split_userinfo(rest)
        if scheme.endswith("+cluster"):
            return _with_userinfo(_parse_cluster(scheme, location), userinfo)
        return _with_userinfo(_parse_single(scheme, location), userinfo)
    except ValueError as exc:
        raise InvalidBackendURL(mask_url(url), str(exc)) from None


def _parse_single(scheme: str, location: str) -> RedisConfig:
    parts = urlsplit(f"{scheme}://{location}")
    hostinfo = parts.netloc
    options = _options(parts.query, tls=scheme == "rediss")
    db = options.pop("db", None)
    if scheme == "unix":
        if hostinfo:
            raise ValueError("unix:// takes a socket path, e.g. unix:///run/redis.sock")
        if not parts.path:
            raise ValueError("unix:// needs a socket path, e.g. unix:///run/redis.sock")
        config = RedisConfig(unix_socket_path=unquote(parts.path), **options)
    else:
        path = parts.path.strip("/")
        if db is not None and path:
            raise ValueError("give the database either in the path or as ?db=, not both")
        db = db if db is not None else (path or None)
        host, port = split_host(hostinfo)
        config = RedisConfig(host=host, port=port, ssl=scheme == "rediss", **options)
    if db is not None:
        config = replace(config, db=_integer("db", db))
    return config


def _parse_cluster(scheme: str, location: str) -> RedisClusterConfig:
    hosts, _, tail = location.partition("/")
    path, _, query = tail.partition("?")
    if "?" in hosts:
        hosts, _, query = hosts.partition("?")
    if path.strip("/") not in ("", "0"):
        raise ValueError("Redis Cluster only has database 0; remove the path")
    if not hosts:
        raise ValueError("give at least one node, e.g. redis+cluster://127.0.0.1:7000")
    nodes = tuple(split_host(entry) for entry in hosts.split(","))
    tls = scheme == "rediss+cluster"
    options = _options(query, tls=tls)
    if "db" in options:
        raise ValueError("Redis Cluster only has database 0; remove ?db=")
    return RedisClusterConfig(nodes=nodes, ssl=tls, **options)


def _with_userinfo(config: _Config, userinfo: str) -> _Config:
    if not userinfo:
        return config
    user, has_password, password = userinfo.partition(":")
    return replace(
        config,
        username=unquote(user) or None,
        password=unquote(password) if has_password else None,
    )


def _options(query: str, *, tls: bool) -> dict[str, Any]:
    options: dict[str, Any] = {}
    allowed = ["connect_timeout", "timeout", "max_connections", "client_name", "db"]
    if tls:
        allowed += ["ssl_cert_reqs", "ssl_ca_certs"]
    for name, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if name not in allowed:
            raise ValueError(f"unknown option {name!r}; accepted options: {', '.join(allowed)}")
        if name in ("connect_timeout", "timeout"):
            options[name] = _number(name, value)
        elif name == "max_connections":
            options[name] = _integer(name, value)
        else:
            options[name] = value
    return options


def split_host(hostinfo: str, default_port: int = _DEFAULT_REDIS_PORT) -> tuple[str, int]:
    """Split `host[:port]` or `[ipv6][:port]`, checking the port.

    Raises:
        ValueError: A malformed address, a missing host, or a port that is not a
            whole number between 1 and 65535 (a `ConfigurationError`).
    """
    if hostinfo.startswith("["):
        host, bracket, port_text = hostinfo[1:].partition("]")
        if not bracket or (port_text and not port_text.startswith(":")):
            raise ValueError(f"malformed IPv6 address {hostinfo!r}; write it as [::1]:6379")
        port_text = port_text[1:]
    else:
        host, _, port_text = hostinfo.rpartition(":") if ":" in hostinfo else (hostinfo, "", "")
    if not host:
        raise ValueError(f"missing host in {hostinfo!r}")
    port = _integer("port", port_text) if port_text else default_port
    _check_port(port)
    return host, port


def _join_host(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_port(port: int) -> None:
    if not 0 < port < 65536:
        raise ConfigurationError(f"port must be between 1 and 65535, got {port}")


def _integer(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {text!r}") from None


def _number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {text!r}") from None


def none_hint(value: object) -> str:
    """A hint for `None` where a URL goes: usually an environment variable that is unset."""
    return " (None: is the environment variable holding it unset?)" if value is None else ""
