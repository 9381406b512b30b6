"""The service's configuration: environment variables (prefix `TODO_`), read once, frozen.

Every other module takes a `Settings` instead of reading the environment, so tests
build one with the values they need (`Settings(database_url=...)`) and the process
reads the environment in one place, `Settings.from_env()`. Values are checked when
the object is built: a bad value stops the process at startup with a message naming
the variable, never at the first request. In production (`TODO_ENV=prod`) the
development JWT secret, which is public in this repository, is refused.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import msgspec

from scalepy.backends import parse_backend_url
from scalepy.errors import ConfigurationError
from todo.http import check_origins
from todo.metrics_server import split_address

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ("DEV_JWT_SECRET", "Rate", "Settings", "SettingsError", "configure_logging")

DEV_JWT_SECRET = "todo-dev-secret-change-me-in-production"
"""The JWT secret used when `TODO_JWT_SECRET` is not set: fine on a laptop, refused in prod."""

_MIN_SECRET_BYTES = 32  # HS256 wants a key at least as long as its hash (RFC 7518 3.2)
_PERIODS = {
    "s": 1.0, "sec": 1.0, "second": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0,
    "h": 3600.0, "hour": 3600.0,
    "d": 86400.0, "day": 86400.0,
}  # fmt: skip
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*\.?\d*)\s*([a-z]+)\s*$")


class SettingsError(ConfigurationError):
    """A setting is missing or invalid; the message names the environment variable."""


@dataclass(frozen=True, slots=True)
class Rate:
    """A rate limit: `limit` requests per `period` seconds, with bursts up to `limit`."""

    limit: int
    """Requests allowed per period (also the largest burst)."""
    period: float
    """The period in seconds."""

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Read `"N/unit"` or `"N/Xunit"`: `100/second`, `20/min`, `5/10s`, `1000/hour`.

        Raises:
            ValueError: Not of that form, or a limit or period of zero.
        """
        match = _RATE.match(text.lower())
        if match is None or match[3] not in _PERIODS:
            units = ", ".join(sorted(_PERIODS))
            raise ValueError(f"expected N/period such as 100/second or 5/10s (units: {units})")
        count = float(match[2]) if match[2] else 1.0
        rate = cls(limit=int(match[1]), period=count * _PERIODS[match[3]])
        if rate.limit < 1 or rate.period <= 0:
            raise ValueError("the limit and the period must be positive")
        return rate

    def __str__(self) -> str:
        return f"{self.limit}/{self.period:g}s"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything the service can be told, with development defaults.

    Raises:
        SettingsError: A value is invalid, or a development secret is used in production.
    """

    env: Literal["dev", "prod"] = "dev"
    """`TODO_ENV`: `dev` migrates the schema at startup and accepts the dev JWT secret."""
    database_url: str = "postgresql://postgres@127.0.0.1:5432/todo"
    """`TODO_DATABASE_URL`: the PostgreSQL database (created by `migrate` if missing)."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    """`TODO_REDIS_URL`: shared by every replica; `memory://` runs one process without Redis."""
    namespace: str = "todo"
    """`TODO_NAMESPACE`: prefix of the service's Redis keys and name of its queue, so that
    several deployments (or test runs) can share one Redis."""
    auth: Literal["jwt", "none"] = "jwt"
    """`TODO_AUTH`: `jwt` requires a bearer token on writes; `none` lets anyone write."""
    jwt_secret: str = field(default=DEV_JWT_SECRET, repr=False)
    """`TODO_JWT_SECRET`: the HS256 key tokens are signed with, at least 32 bytes in prod."""
    trusted_proxies: tuple[str, ...] = ()
    """`TODO_TRUSTED_PROXIES`: networks (or `unix`) whose forwarded headers are believed."""
    cors_origins: tuple[str, ...] = ()
    """`TODO_CORS_ORIGINS`: origins browsers may call from (`*` for any); none by default."""
    rate_limit: Rate = Rate(limit=100, period=1.0)
    """`TODO_RATE_LIMIT`: per client, for every request (`100/second`)."""
    write_rate_limit: Rate = Rate(limit=20, period=1.0)
    """`TODO_WRITE_RATE_LIMIT`: per client, for writes, on top of the first (`20/second`)."""
    shedding: bool = False
    """`TODO_SHEDDING`: shed load past the concurrency the replica can serve (503), or not.

    Off by default: turn it on where many independent clients can send faster than
    the replica serves (an open loop). A closed loop of clients (a pool, `wrk -c100`)
    cannot overload it, but its writes wait on PostgreSQL longer than the shedder's
    20 ms target and would be refused.
    """
    log_level: str = "INFO"
    """`TODO_LOG_LEVEL`: DEBUG, INFO, WARNING or ERROR."""
    max_body_bytes: int = 64 * 1024
    """`TODO_MAX_BODY_BYTES`: larger request bodies are refused with 413."""
    cache_ttl: float = 60.0
    """`TODO_CACHE_TTL`: seconds a cached todo or page stays fresh (writes invalidate sooner)."""
    cache_local_size: int = 10_000
    """`TODO_CACHE_LOCAL_SIZE`: entries in each process's in-memory L1; 0 turns it off."""
    db_breaker_open_for: float = 30.0
    """`TODO_DB_BREAKER_OPEN_FOR`: seconds the PostgreSQL breaker stays open before a trial."""
    db_breaker_minimum_calls: int = 20
    """`TODO_DB_BREAKER_MINIMUM_CALLS`: calls in the window before the breaker may open."""
    drain_delay: float = 5.0
    """`TODO_DRAIN_DELAY`: seconds `POST /health/drain` holds (readiness failing, requests
    still served) before it answers, for load balancers to notice; 0 answers at once."""
    metrics_address: str | None = None
    """`TODO_METRICS_ADDRESS`: `host:port` where the process also serves `/metrics` on a
    listener of its own (the worker's only one; a replica on a Unix socket needs it too)."""
    drain_token: str | None = field(default=None, repr=False)
    """`TODO_DRAIN_TOKEN`: when set, `POST /health/drain` needs `Authorization: Bearer <it>`
    (set it when clients can reach that path: a drained replica gets no traffic)."""

    def __post_init__(self) -> None:
        _check_choice("TODO_ENV", self.env, ("dev", "prod"))
        _check_choice("TODO_AUTH", self.auth, ("jwt", "none"))
        _check_choice("TODO_LOG_LEVEL", self.log_level, ("DEBUG", "INFO", "WARNING", "ERROR"))
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.namespace):
            raise SettingsError("TODO_NAMESPACE must be 1-64 letters, digits, '_', '.' or '-'")
        if not self.database_url.startswith(("postgresql://", "postgres://")):
            raise SettingsError("TODO_DATABASE_URL must be a postgresql:// URL")
        try:
            parse_backend_url(self.redis_url)
        except ConfigurationError as exc:
            raise SettingsError(f"TODO_REDIS_URL: {exc}") from exc
        for proxy in self.trusted_proxies:
            if proxy != "unix":
                try:
                    ipaddress.ip_network(proxy, strict=False)
                except ValueError as exc:
                    raise SettingsError(
                        f"TODO_TRUSTED_PROXIES: {proxy!r} is neither a network nor 'unix'"
                    ) from exc
        try:
            check_origins(self.cors_origins)
        except ValueError as exc:
            raise SettingsError(f"TODO_CORS_ORIGINS: {exc}") from exc
        for name, value in (
            ("TODO_MAX_BODY_BYTES", self.max_body_bytes),
            ("TODO_DB_BREAKER_MINIMUM_CALLS", self.db_breaker_minimum_calls),
        ):
            if value < 1:
                raise SettingsError(f"{name} must be at least 1, got {value}")
        if self.cache_local_size < 0:
            raise SettingsError("TODO_CACHE_LOCAL_SIZE must be 0 (no L1) or more")
        if not 0 <= self.drain_delay < float("inf"):
            raise SettingsError("TODO_DRAIN_DELAY must be 0 or a positive number of seconds")
        for name, seconds in (
            ("TODO_CACHE_TTL", self.cache_ttl),
            ("TODO_DB_BREAKER_OPEN_FOR", self.db_breaker_open_for),
        ):
            if not 0 < seconds < float("inf"):
                raise SettingsError(f"{name} must be a positive number of seconds")
        if self.metrics_address is not None:
            try:
                split_address(self.metrics_address)
            except ValueError as exc:
                raise SettingsError(f"TODO_METRICS_ADDRESS: {exc}") from exc
        self._check_secret()

    # --8<-- [start:secret]
    def _check_secret(self) -> None:
        if self.env != "prod":
            return
        if self.jwt_secret == DEV_JWT_SECRET:
            raise SettingsError(
                "TODO_JWT_SECRET is the development secret, which is public: set a secret of "
                f"your own (at least {_MIN_SECRET_BYTES} bytes) when TODO_ENV=prod"
            )
        if len(self.jwt_secret.encode()) < _MIN_SECRET_BYTES:
            raise SettingsError(f"TODO_JWT_SECRET must be at least {_MIN_SECRET_BYTES} bytes")

    # --8<-- [end:secret]

    @property
    def single_process(self) -> bool:
        """Whether the service runs without Redis (`memory://`): one process, its own worker."""
        return self.redis_url.startswith("memory://")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the `TODO_*` variables; unset or empty ones keep their defaults.

        Args:
            environ: The variables; `os.environ` if `None`.

        Raises:
            SettingsError: A value is invalid (the message names the variable).
        """
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name in (item.name for item in dataclasses.fields(cls)):
            raw = environ.get(f"TODO_{name.upper()}", "").strip()
            if not raw:
                continue
            if name in ("trusted_proxies", "cors_origins"):
                values[name] = [part.strip() for part in raw.split(",") if part.strip()]
            elif name in ("rate_limit", "write_rate_limit"):
                try:
                    values[name] = Rate.parse(raw)
                except ValueError as exc:
                    raise SettingsError(f"TODO_{name.upper()}={raw!r}: {exc}") from exc
            else:
                values[name] = raw.upper() if name == "log_level" else raw
        try:  # msgspec turns the strings into the fields' types (and runs __post_init__)
            return msgspec.convert(values, cls, strict=False)
        except msgspec.ValidationError as exc:
            # "Expected `int`, got `str` - at `$.max_body_bytes`": name the variable.
            detail, _, where = str(exc).partition(" - at `$.")
            message = f"TODO_{where.rstrip('`').upper()}: {detail}" if where else detail
            raise SettingsError(message) from None


def _check_choice(variable: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SettingsError(f"{variable} must be one of {', '.join(allowed)}; got {value!r}")


def configure_logging(settings: Settings) -> None:
    """Set the root logger's level (and a format, when nothing configured logging yet)."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(settings.log_level)
