"""The public URL of the service, as clients see it, for the absolute `url` of each todo.

Behind nginx the app sees `http://unix-socket/...`; the client used
`https://todo.example/...`. The proxy says so in `X-Forwarded-Proto` and
`X-Forwarded-Host`, but anyone can send those headers, so they are believed only
from a trusted proxy (`TODO_TRUSTED_PROXIES`: networks, or `unix` for a peer on a
Unix socket), as the rate limiter believes `X-Forwarded-For` only from them.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from starlette.requests import Request
    from starlette.types import Scope

__all__ = ("PublicUrls",)

_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")


class PublicUrls:
    """Builds absolute URLs from a request, believing forwarded headers from trusted proxies.

    Args:
        trusted_proxies: Networks (`10.0.0.0/8`, `127.0.0.1`) or `unix`.
    """

    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        proxies = tuple(trusted_proxies)
        self._unix = "unix" in proxies
        self._networks = tuple(
            ipaddress.ip_network(proxy, strict=False) for proxy in proxies if proxy != "unix"
        )
        # Per request, parsing the peer's address cost more than the rest of the origin;
        # a service sees few peers (its proxies), so the verdicts are kept (bounded).
        self._trusted_address = functools.lru_cache(maxsize=1024)(self._trusted_uncached)

    def origin(self, request: Request) -> str:
        """`scheme://host[:port]` plus the app's root path, as the client addressed it."""
        scope = request.scope
        # Each header's first value, as `request.headers.get` gives it, without building
        # Starlette's `Headers` (most of this method's cost once).
        if self._trusted(scope):
            first = dict(reversed(scope["headers"]))
            host = first.get(b"host", b"")
            forwarded = (first.get(b"x-forwarded-proto"), first.get(b"x-forwarded-host"))
        else:
            host = _first_host(scope)
            forwarded = (None, None)
        # `scope["scheme"]`, not `request.url`: that parses a URL.
        scheme, shown = _addressed(scope.get("scheme", "http"), host, *forwarded)
        return f"{scheme}://{shown or _server_address(scope)}{scope.get('root_path', '')}"

    def _trusted(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client or not client[0]:  # a Unix socket: the peer has no address
            return self._unix
        return self._trusted_address(client[0])

    def _trusted_uncached(self, address: str) -> bool:
        try:
            peer = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(peer in network for network in self._networks)


@functools.lru_cache(maxsize=256)
def _addressed(
    scheme: str, host: bytes, forwarded_proto: bytes | None, forwarded_host: bytes | None
) -> tuple[str, str | None]:
    """The scheme and host the client used; `None`: `host` is missing or not a host.

    The forwarded headers are `None` unless a trusted proxy sent them. Kept (bounded):
    the same few hosts come with every request, and checking them was most of the cost.
    """
    if forwarded_proto is not None:
        proto = _first(forwarded_proto.decode("latin-1"))
        if proto in ("http", "https"):
            scheme = proto
    if forwarded_host is not None:
        forwarded = _first(forwarded_host.decode("latin-1"))
        if _HOST.fullmatch(forwarded):
            return scheme, forwarded
    client_host = host.decode("latin-1")
    return scheme, client_host if _HOST.fullmatch(client_host) else None


def _first_host(scope: Scope) -> bytes:
    """The first `Host` header; a client sends it first, so the scan ends there."""
    host: bytes
    for name, host in scope["headers"]:
        if name == b"host":
            return host
    return b""


def _server_address(scope: Scope) -> str:
    """`host:port` the server listens on; `localhost` on a Unix socket."""
    server = scope.get("server")
    if not server or server[1] is None or not _HOST.fullmatch(str(server[0])):
        return "localhost"
    return f"{server[0]}:{server[1]}"


def _first(value: str) -> str:
    """The first of a comma-separated header's values (the client-facing hop's)."""
    return value.split(",", 1)[0].strip()
