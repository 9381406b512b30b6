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
        scheme = request.scope.get("scheme", "http")  # not request.url: it parses a URL
        # Each header's first value, as `request.headers.get` gives it, without building
        # Starlette's `Headers` (most of this method's cost once).
        headers = dict(reversed(request.scope["headers"]))
        host = headers.get(b"host", b"").decode("latin-1")
        if self._trusted(request):
            forwarded_proto = _first(headers.get(b"x-forwarded-proto", b"").decode("latin-1"))
            if forwarded_proto in ("http", "https"):
                scheme = forwarded_proto
            forwarded_host = _first(headers.get(b"x-forwarded-host", b"").decode("latin-1"))
            if _HOST.fullmatch(forwarded_host):
                host = forwarded_host
        if not _HOST.fullmatch(host):  # missing or not a host: the address we listen on
            host = _server_address(request)
        return f"{scheme}://{host}{request.scope.get('root_path', '')}"

    def _trusted(self, request: Request) -> bool:
        client = request.scope.get("client")
        if not client or not client[0]:  # a Unix socket: the peer has no address
            return self._unix
        return self._trusted_address(client[0])

    def _trusted_uncached(self, address: str) -> bool:
        try:
            peer = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(peer in network for network in self._networks)


def _server_address(request: Request) -> str:
    """`host:port` the server listens on; `localhost` on a Unix socket."""
    server = request.scope.get("server")
    if not server or server[1] is None or not _HOST.fullmatch(str(server[0])):
        return "localhost"
    return f"{server[0]}:{server[1]}"


def _first(value: str) -> str:
    """The first of a comma-separated header's values (the client-facing hop's)."""
    return value.split(",", 1)[0].strip()
