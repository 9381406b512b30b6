"""Key extractors: which identity an HTTP request is limited as.

A key function takes the ASGI scope and returns the identity to limit, e.g.
`"ip:203.0.113.7"`; `None` when the request has no identity it can name (no
peer address, no such header, an anonymous user); or `EXEMPT` to leave the
request unlimited on purpose. `None` is never an exemption: it is what a missing
header or a forgotten `return` produce, so the middleware limits such requests
together under one shared key and says so in a warning.

- `client_ip()` uses the peer address. It reads `X-Forwarded-For` (or the
  standard `Forwarded` header) only when the peer is a configured trusted proxy,
  and then only as far as the chain of trusted proxies goes: a client can write
  anything into those headers, so by default they are ignored. A peer on a Unix
  socket has no address; `"unix"` among the trusted proxies trusts it.
- `header_key(name)` uses a request header such as an API key, hashed so that
  secrets never reach the backend's key space.
- `user_key()` uses the authenticated user that Starlette's
  `AuthenticationMiddleware` (or anything setting `scope["user"]`) put there.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias, TypeVar

from scalepy._validation import check_int
from scalepy.errors import ConfigurationError

__all__ = (
    "EXEMPT",
    "UNIDENTIFIED",
    "UNIX",
    "ClientIP",
    "Exempt",
    "HeaderKey",
    "KeyFunc",
    "UserKey",
    "client_ip",
    "header_key",
    "quota_key",
    "route_suffix",
    "user_key",
)

Scope: TypeAlias = Mapping[str, Any]
"""An ASGI connection scope, read-only as far as key functions are concerned."""


class Exempt(enum.Enum):
    """The type of `EXEMPT`, the one value a key function returns to skip limiting."""

    EXEMPT = "exempt"


EXEMPT: Final = Exempt.EXEMPT
"""Returned by a key function: let this request through unlimited, on purpose."""

UNIDENTIFIED: Final = "unidentified"
"""The key the middleware gives every request whose key function returned `None`."""

UNIX: Final = "unix"
"""Names Unix-socket peers among `client_ip()`'s trusted proxies."""

KeyFunc: TypeAlias = Callable[[Scope], "str | Exempt | None"]
"""Maps an ASGI scope to the identity to limit; `None` when it has none, `EXEMPT` to skip."""

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
_T = TypeVar("_T")
_R = TypeVar("_R")

# RFC 9110 token: what a header name may contain.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A port after an address in a forwarding header, e.g. `203.0.113.7:4711`.
_PORT = re.compile(r"[0-9]{1,5}")
# 64:ff9b::/96 (RFC 6052) shifted right by its 32 host bits.
_NAT64_PREFIX: Final = int(ipaddress.IPv6Address("64:ff9b::")) >> 32


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientIP:
    """Limit by client IP address, trusting forwarding headers only from known proxies.

    When the peer (`scope["client"]`) is inside one of `trusted_proxies`, the
    forwarding header is read from the right, skipping addresses that are
    themselves trusted proxies; the first untrusted address is the client. An
    entry that is not an IP address (`unknown`, an obfuscated identifier,
    garbage) ends the walk: nothing to its left can be vouched for, so the last
    trusted hop is used instead. When every hop is trusted, the leftmost one is.

    A peer without an address (a Unix socket: `scope["client"]` is `None`) is a
    trusted proxy only with `trust_unix_socket`; then the header names the
    client. Otherwise, or when the header names no address, the key is `None`.

    An IPv6 client is limited by its network of `ipv6_prefix` bits (a /64 by
    default, as Envoy and Cloudflare do): one subscriber usually holds a whole
    /64 and can pick a fresh address from it for every request. IPv4-mapped IPv6
    addresses (`::ffff:192.0.2.1`) are limited as the IPv4 address, and so are the
    transition addresses that carry one: 6to4 (`2002::/16`), Teredo (`2001::/32`)
    and NAT64's well-known prefix (`64:ff9b::/96`).

    Build it with `client_ip()`.
    """

    trusted_proxies: tuple[IPNetwork, ...] = ()
    """Networks whose forwarding headers are believed; empty trusts none."""
    trust_unix_socket: bool = False
    """Believe the forwarding header of peers without an address (Unix sockets)."""
    header: str = "x-forwarded-for"
    """The forwarding header to read, lower case: `x-forwarded-for`-style lists of
    addresses, or `forwarded` for the RFC 7239 header (`for=` parameters)."""
    prefix: str = "ip:"
    """Prepended to the address to form the key."""
    ipv6_prefix: int = 64
    """IPv6 clients are keyed by their network of this many leading bits, 1 to 128."""
    _header_bytes: bytes = field(init=False, repr=False, compare=False)
    _ipv6_mask: int = field(init=False, repr=False, compare=False)
    _cached_key: Callable[[IPAddress], str] = field(init=False, repr=False, compare=False)
    _peer_key: Callable[[str], str | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for network in self.trusted_proxies:
            if not isinstance(network, ipaddress.IPv4Network | ipaddress.IPv6Network):
                raise ConfigurationError(
                    f"trusted_proxies must hold ipaddress networks, got {network!r}; "
                    "use client_ip() to pass strings"
                )
        if not _TOKEN.fullmatch(self.header):
            raise ConfigurationError(
                f"header must be an HTTP header name, e.g. 'x-forwarded-for' or "
                f"'forwarded', got {self.header!r}"
            )
        if self.header != self.header.lower():
            raise ConfigurationError(f"header must be lower case, got {self.header!r}")
        check_int("ipv6_prefix", self.ipv6_prefix, minimum=1, maximum=128)
        object.__setattr__(self, "_header_bytes", self.header.encode("ascii"))
        mask = ((1 << self.ipv6_prefix) - 1) << (128 - self.ipv6_prefix)  # the leading bits
        object.__setattr__(self, "_ipv6_mask", mask)
        object.__setattr__(self, "_cached_key", _cache(self._key))
        # Most peers are not proxies: their key depends on the address alone.
        object.__setattr__(self, "_peer_key", _cache(self._direct_key))

    def __call__(self, scope: Scope) -> str | None:
        """Return `prefix` + the client address, or `None` when no address names the client."""
        client = scope.get("client")
        if not client or not client[0]:  # a Unix socket: the peer has no address
            if not self.trust_unix_socket:
                return None
            address = self._walk(scope)
            return None if address is None else self._key(address)
        host = str(client[0])
        key = self._peer_key(host)
        if key is not None:
            return key
        address = self._walk(scope)  # behind a trusted proxy: the header names the client
        if address is None:
            address = _parse_address(host)
        return None if address is None else self._cached_key(address)

    def _direct_key(self, host: str) -> str | None:
        """The key of the peer `host` itself; `None` when it is a trusted proxy."""
        peer = _parse_address(host)
        if peer is None:
            # Not an IP (a test client, a socket path): the server's word, not the client's.
            return self.prefix + host
        if self.trusted_proxies and self._trusted(peer):
            return None
        return self._key(peer)

    def _key(self, client: IPAddress) -> str:
        """`prefix` + the IPv4 address, or + the IPv6 network of `ipv6_prefix` bits."""
        if client.version == 6:
            client = _embedded_ipv4(client) or client
        if client.version == 4 or self.ipv6_prefix == 128:
            return self.prefix + str(client)
        network = ipaddress.IPv6Address(int(client) & self._ipv6_mask)
        return f"{self.prefix}{network}/{self.ipv6_prefix}"

    def _trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self.trusted_proxies)

    def _walk(self, scope: Scope) -> IPAddress | None:
        """The client the header names behind a trusted peer; `None` if no address is usable."""
        values = [
            value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name == self._header_bytes
        ]
        hops = _forwarded_for(values) if self.header == "forwarded" else _forwarded_list(values)
        client: IPAddress | None = None
        for hop in reversed(hops):
            address = _parse_address(hop)
            if address is None:
                break
            client = address
            if not self._trusted(address):
                break
        return client


def client_ip(
    *,
    trusted_proxies: Iterable[str | IPNetwork] = (),
    header: str = "x-forwarded-for",
    prefix: str = "ip:",
    ipv6_prefix: int = 64,
) -> ClientIP:
    """Limit by client IP address; see `ClientIP` for how proxies are handled.

    Args:
        trusted_proxies: Networks or addresses of your own reverse proxies and load
            balancers, e.g. `["10.0.0.0/8", "fd00::/8", "127.0.0.1"]`, and `"unix"`
            (`UNIX`) when the server listens on a Unix socket behind a proxy (e.g.
            `uvicorn --uds` behind nginx). Empty (the default) ignores forwarding
            headers: the peer address is the client.
        header: `"x-forwarded-for"` (default), another header holding a
            comma-separated list of addresses, or `"forwarded"` (RFC 7239). Name
            the one header your proxy writes; the other one is client-controlled.
        prefix: Prepended to the address to form the key.
        ipv6_prefix: How many leading bits of an IPv6 client address form its key,
            1 to 128: 64 (the default) limits each /64 as one client, 128 each
            address.

    Returns:
        A key function returning e.g. `"ip:203.0.113.7"` or `"ip:2001:db8:1:2::/64"`,
        or `None` for a request whose client has no address: from a Unix socket
        that is not trusted, or from a trusted one whose header names no address.

    Raises:
        ConfigurationError: A trusted proxy is not an IP network (or has host bits
            set, e.g. `10.0.0.1/8`) nor `"unix"`, `trusted_proxies` is a single
            string, the header name is not a valid header name, or `ipv6_prefix`
            is not an int from 1 to 128.
    """
    if isinstance(trusted_proxies, str | bytes):
        raise ConfigurationError(
            f"trusted_proxies must be a list of networks, not one string: "
            f"write [{trusted_proxies!r}]"
        )
    proxies = list(trusted_proxies)
    return ClientIP(
        trusted_proxies=tuple(_parse_network(value) for value in proxies if value != UNIX),
        trust_unix_socket=UNIX in proxies,
        header=header.lower(),
        prefix=prefix,
        ipv6_prefix=ipv6_prefix,
    )


def _parse_network(value: str | IPNetwork) -> IPNetwork:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    if not isinstance(value, str):
        raise ConfigurationError(
            f"trusted proxy must be a string like '10.0.0.0/8' or 'unix', got {value!r}"
        )
    try:
        return ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        raise ConfigurationError(
            f"trusted proxy {value!r} is not an IP address or network "
            f"(e.g. '10.0.0.0/8', '192.0.2.1', 'fd00::/8') nor 'unix': {exc}"
        ) from None


def _cache(function: Callable[[_T], _R]) -> Callable[[_T], _R]:
    """`function` with its results kept in a bounded LRU.

    Per request, parsing and formatting addresses cost more than the rest of the key,
    and a server sees the same peers and proxies again and again.
    """
    return functools.lru_cache(maxsize=4096)(function)


@_cache
def _parse_address(text: str) -> IPAddress | None:
    """An IP address from a forwarding-header node, or `None` if it is not one.

    Accepts `192.0.2.1`, `192.0.2.1:8080`, `2001:db8::1`, `[2001:db8::1]` and
    `[2001:db8::1]:8080`. IPv4-mapped IPv6 addresses become IPv4.
    """
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            return None
        rest = text[end + 1 :]
        if rest and not (rest.startswith(":") and _PORT.fullmatch(rest[1:])):
            return None
        return _ip(text[1:end], version=6)
    if text.count(":") == 1:
        text, _, port = text.partition(":")
        if not _PORT.fullmatch(port):
            return None
    return _ip(text)


def _ip(text: str, version: int | None = None) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if version is not None and address.version != version:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 host an IPv6 transition address stands for, or `None` for a native one.

    6to4 (`2002::/16`: one IPv4 host holds 65536 /64s), Teredo (`2001::/32`: one
    server's clients share a /64) and NAT64's well-known prefix (`64:ff9b::/96`:
    every IPv4 client of an IPv6-only server shares one /64).
    """
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if int(address) >> 32 == _NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _forwarded_list(values: list[str]) -> list[str]:
    """Hops of `X-Forwarded-For`-style headers, leftmost (farthest) first."""
    return [hop for value in values for hop in value.split(",")]


def _forwarded_for(values: list[str]) -> list[str]:
    """The `for=` node of each RFC 7239 `Forwarded` element, leftmost first.

    An element without a `for=` parameter, or with a malformed one, yields `""`,
    which no address parses from, so it ends the walk like any other garbage.
    """
    hops: list[str] = []
    for value in values:
        for element in _split_unquoted(value, ","):
            node = ""
            for pair in _split_unquoted(element, ";"):
                name, equals, raw = pair.partition("=")
                if equals and name.strip().lower() == "for":
                    node = _unquote(raw.strip())
                    break
            hops.append(node)
    return hops


def _split_unquoted(text: str, separator: str) -> list[str]:
    """Split on `separator` outside double-quoted strings (with backslash escapes)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def route_suffix(route: str | None) -> str:
    """The suffix of `route`'s quota keys (see `quota_key`): `"|" + route`, or `""`.

    Args:
        route: A path prefix (it starts with `/`), or `None` for the default policies.
    """
    return "" if route is None else "|" + route


def quota_key(identity: str, suffix: str) -> str:
    """The limiter key of `identity` under the route whose `route_suffix` is `suffix`.

    Every `|` in the identity is doubled and a route follows a single `|`, so the
    identity ends where the first run of an odd number of pipes does (a route
    starts with `/`, never with `|`). A key therefore names one (identity, route)
    pair only: an identity such as `"x|/login"` cannot borrow the quota of `"x"`
    on `/login`. Identities without `|` (addresses, digests) are kept as they are.

    Args:
        identity: What the key function returned.
        suffix: `route_suffix(route)`, computed once per route.

    Returns:
        E.g. `"ip:203.0.113.7"`, `"ip:203.0.113.7|/login"`, `"user:a||b|/login"`.
    """
    if "|" in identity:
        identity = identity.replace("|", "||")
    return identity + suffix


@dataclass(frozen=True, slots=True, kw_only=True)
class HeaderKey:
    """Limit by the value of a request header, e.g. an API key.

    Requests without the header (or with an empty one) have no key (`None`): the
    middleware limits them together under one shared key. To key them otherwise,
    combine key functions, e.g. `lambda scope: api_key(scope) or ips(scope)`, or
    `... or EXEMPT` to let them through. Build it with `header_key()`.
    """

    name: str
    """The header name, lower case."""
    prefix: str
    """Prepended to the (hashed) value to form the key."""
    hashed: bool = True
    """Use a SHA-256 digest of the value instead of the value itself, so secrets
    such as API keys are not stored in the backend's key names."""
    _name_bytes: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _TOKEN.fullmatch(self.name) or self.name != self.name.lower():
            raise ConfigurationError(
                f"name must be a lower-case HTTP header name, e.g. 'x-api-key', got {self.name!r}"
            )
        object.__setattr__(self, "_name_bytes", self.name.encode("ascii"))

    def __call__(self, scope: Scope) -> str | None:
        """Return `prefix` + the header's (hashed) value, or `None` when it is absent."""
        for name, value in scope.get("headers", ()):
            if name == self._name_bytes and value.strip():
                raw: bytes = value.strip()
                if self.hashed:
                    return self.prefix + hashlib.sha256(raw).hexdigest()[:32]
                return self.prefix + raw.decode("latin-1")
        return None


def header_key(name: str, *, prefix: str | None = None, hashed: bool = True) -> HeaderKey:
    """Limit by the value of the request header `name` (e.g. `"x-api-key"`).

    Args:
        name: The header, case-insensitive.
        prefix: Prepended to the value; `"<name>:"` when `None`.
        hashed: Key on a SHA-256 digest of the value (default) rather than the
            value itself, so API keys never appear in the backend.

    Returns:
        A key function returning e.g. `"x-api-key:9f86d081884c7d659a2feaa0c55ad015"`,
        or `None` for requests without the header.

    Raises:
        ConfigurationError: `name` is not a valid header name.
    """
    given: object = name  # checked as given, whatever the annotation says
    if not isinstance(given, str):
        raise ConfigurationError(f"name must be a header name, e.g. 'x-api-key', got {given!r}")
    lowered = name.lower()
    return HeaderKey(
        name=lowered, prefix=f"{lowered}:" if prefix is None else prefix, hashed=hashed
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class UserKey:
    """Limit by the authenticated user in `scope["user"]`.

    Works with Starlette's `AuthenticationMiddleware` and anything else that puts
    an object with `is_authenticated` and `identity` (or `display_name`) in the
    scope. Anonymous requests have no key (`None`): the middleware limits them
    together under one shared key; `lambda scope: users(scope) or ips(scope)`
    limits them by address instead. Build it with `user_key()`.
    """

    prefix: str = "user:"
    """Prepended to the user's identity to form the key."""

    def __call__(self, scope: Scope) -> str | None:
        """Return `prefix` + the user's identity, or `None` for anonymous requests."""
        user = scope.get("user")
        if user is None or getattr(user, "is_authenticated", False) is not True:
            return None
        for attribute in ("identity", "display_name"):
            try:
                identity = getattr(user, attribute, None)
            except NotImplementedError:
                continue
            if identity is not None and str(identity):
                return self.prefix + str(identity)
        return None


def user_key(*, prefix: str = "user:") -> UserKey:
    """Limit by the authenticated user (`scope["user"]`), e.g. `"user:alice"`.

    Args:
        prefix: Prepended to the identity.

    Returns:
        A key function returning `None` for anonymous requests.
    """
    return UserKey(prefix=prefix)
