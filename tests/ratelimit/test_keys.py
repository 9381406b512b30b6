"""Key extractors: client IP behind trusted proxies, header keys, authenticated users."""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from starlette.authentication import SimpleUser, UnauthenticatedUser

from scalepy.errors import ConfigurationError
from scalepy.ratelimit import UNIX, client_ip, header_key, user_key

# Reaches in on purpose: the dataclasses behind client_ip()/header_key() check their own
# fields, and quota_key is the internal key layout whose injectivity is proved here.
from scalepy.ratelimit._keys import ClientIP, HeaderKey, quota_key, route_suffix

PROXIES = ["10.0.0.0/8", "fd00::/8"]


def scope(
    peer: str | None = "203.0.113.7", *headers: tuple[str, str], **extra: Any
) -> dict[str, Any]:
    """An HTTP scope from `peer` with the given headers."""
    return {
        "type": "http",
        "path": "/",
        "client": None if peer is None else (peer, 51000),
        "headers": [(name.encode(), value.encode("latin-1")) for name, value in headers],
        **extra,
    }


def test_peer_address_is_the_key_by_default() -> None:
    """Without trusted proxies the peer address is the client."""
    assert "ip:203.0.113.7" == client_ip()(scope())


def test_spoofed_forwarded_for_from_untrusted_peer_is_ignored() -> None:
    """A client cannot choose its key by sending X-Forwarded-For itself."""
    key = client_ip(trusted_proxies=PROXIES)
    assert "ip:203.0.113.7" == key(scope("203.0.113.7", ("x-forwarded-for", "198.51.100.1")))


def test_forwarded_for_ignored_when_no_proxy_is_trusted() -> None:
    """The default trusts no proxy, even one on a private network."""
    assert "ip:10.0.0.1" == client_ip()(scope("10.0.0.1", ("x-forwarded-for", "198.51.100.1")))


def test_forwarded_for_from_trusted_proxy_names_the_client() -> None:
    """The address a trusted proxy appended is the client."""
    key = client_ip(trusted_proxies=PROXIES)
    assert "ip:198.51.100.1" == key(scope("10.0.0.1", ("x-forwarded-for", "198.51.100.1")))


def test_chain_through_several_trusted_proxies() -> None:
    """Trusted hops are skipped from the right; spoofed entries left of the client are not read."""
    key = client_ip(trusted_proxies=PROXIES)
    request = scope("10.0.0.3", ("x-forwarded-for", "6.6.6.6, 198.51.100.1, 10.0.0.1, 10.0.0.2"))
    assert "ip:198.51.100.1" == key(request)


def test_repeated_forwarded_for_headers_form_one_list() -> None:
    """Several header lines are read as one comma-separated list, in order."""
    key = client_ip(trusted_proxies=PROXIES)
    request = scope(
        "10.0.0.3", ("x-forwarded-for", "6.6.6.6, 198.51.100.1"), ("x-forwarded-for", "10.0.0.2")
    )
    assert "ip:198.51.100.1" == key(request)


def test_all_hops_trusted_gives_the_leftmost() -> None:
    """A request made by the proxies themselves is keyed by the farthest of them."""
    key = client_ip(trusted_proxies=PROXIES)
    assert "ip:10.0.0.1" == key(scope("10.0.0.3", ("x-forwarded-for", "10.0.0.1, 10.0.0.2")))


def test_trusted_peer_without_header_is_the_client() -> None:
    """A trusted proxy talking on its own behalf is limited as itself."""
    assert "ip:10.0.0.3" == client_ip(trusted_proxies=PROXIES)(scope("10.0.0.3"))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("198.51.100.1, garbage", "ip:10.0.0.3"),
        ("198.51.100.1, unknown, 10.0.0.2", "ip:10.0.0.2"),
        ("garbage, 198.51.100.1", "ip:198.51.100.1"),
        ("198.51.100.1, ", "ip:10.0.0.3"),
        ("198.51.100.1, 10.0.0.2:99999999", "ip:10.0.0.3"),
        ("198.51.100.1, 10.0.0.2:http", "ip:10.0.0.3"),
        ("198.51.100.1, [2001:db8::1", "ip:10.0.0.3"),
        ("198.51.100.1, [198.51.100.2]", "ip:10.0.0.3"),
        ("198.51.100.1, [2001:db8::1]x", "ip:10.0.0.3"),
        ("198.51.100.1, 300.1.1.1", "ip:10.0.0.3"),
        ("\u00ff\u00fe, 198.51.100.1", "ip:198.51.100.1"),
    ],
)
def test_garbage_entries_stop_the_walk(header: str, expected: str) -> None:
    """Nothing left of an entry that is not an address is trusted, and nothing raises."""
    key = client_ip(trusted_proxies=PROXIES)
    assert expected == key(scope("10.0.0.3", ("x-forwarded-for", header)))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("198.51.100.1:4711", "ip:198.51.100.1"),
        ("[2001:db8::1]:4711", "ip:2001:db8::/64"),
        ("[2001:db8::1]", "ip:2001:db8::/64"),
        ("2001:DB8:0::1", "ip:2001:db8::/64"),
        ("::ffff:198.51.100.1", "ip:198.51.100.1"),
    ],
)
def test_forwarded_for_address_forms(header: str, expected: str) -> None:
    """Ports, brackets and IPv4-mapped forms are understood and normalised."""
    key = client_ip(trusted_proxies=PROXIES)
    assert expected == key(scope("10.0.0.1", ("x-forwarded-for", header)))


def test_ipv6_trusted_network() -> None:
    """IPv6 proxies are matched against IPv6 networks."""
    key = client_ip(trusted_proxies=PROXIES)
    request = scope("fd00::2", ("x-forwarded-for", "2001:db8::7, fd00::1"))
    assert "ip:2001:db8::/64" == key(request)


def test_ipv4_mapped_peer_matches_ipv4_network() -> None:
    """A dual-stack server's IPv4-mapped peer address is trusted like the IPv4 one."""
    key = client_ip(trusted_proxies=PROXIES)
    assert "ip:198.51.100.1" == key(scope("::ffff:10.0.0.1", ("x-forwarded-for", "198.51.100.1")))


def test_single_trusted_address() -> None:
    """A bare address is a /32 network."""
    key = client_ip(trusted_proxies=["127.0.0.1"])
    assert "ip:198.51.100.1" == key(scope("127.0.0.1", ("x-forwarded-for", "198.51.100.1")))
    assert "ip:127.0.0.2" == key(scope("127.0.0.2", ("x-forwarded-for", "198.51.100.1")))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("for=198.51.100.1", "ip:198.51.100.1"),
        ("For=198.51.100.1;proto=https;by=10.0.0.1", "ip:198.51.100.1"),
        ('for="198.51.100.1:4711"', "ip:198.51.100.1"),
        ('for="[2001:db8:cafe::17]:4711"', "ip:2001:db8:cafe::/64"),
        ('for="[2001:db8:cafe::17]"', "ip:2001:db8:cafe::/64"),
        ('for=6.6.6.6, for="198.51.100.1";by="x,y", for=10.0.0.2', "ip:198.51.100.1"),
        ('for="\\198.51.100.1"', "ip:198.51.100.1"),
        ("proto=https;by=10.0.0.2", "ip:10.0.0.3"),
        ("for=198.51.100.1, for=unknown", "ip:10.0.0.3"),
        ("for=198.51.100.1, for=_hidden", "ip:10.0.0.3"),
        ('for="198.51.100.1', "ip:10.0.0.3"),
        ("for", "ip:10.0.0.3"),
    ],
)
def test_forwarded_header_forms(header: str, expected: str) -> None:
    """RFC 7239 elements, quoted strings, IPv6 and obfuscated nodes are handled."""
    key = client_ip(trusted_proxies=PROXIES, header="Forwarded")
    assert expected == key(scope("10.0.0.3", ("forwarded", header)))


def test_forwarded_header_is_not_read_when_x_forwarded_for_is_configured() -> None:
    """Only the configured header is believed; the other is client-controlled."""
    key = client_ip(trusted_proxies=PROXIES)
    assert "ip:10.0.0.3" == key(scope("10.0.0.3", ("forwarded", "for=198.51.100.1")))


def test_custom_prefix_and_header() -> None:
    """Another address-list header and key prefix can be configured."""
    key = client_ip(trusted_proxies=PROXIES, header="x-real-ip", prefix="client:")
    assert "client:198.51.100.1" == key(scope("10.0.0.3", ("x-real-ip", "198.51.100.1")))


def test_non_ip_peer_is_used_as_is() -> None:
    """A peer that is not an IP (a test client) is keyed by what the server reported."""
    assert "ip:testclient" == client_ip(trusted_proxies=PROXIES)(scope("testclient"))


@pytest.mark.parametrize("client", [None, ("", 0)])
def test_a_peer_without_address_has_no_key(client: tuple[str, int] | None) -> None:
    """An untrusted Unix-socket peer has no address: no key, whatever its headers say."""
    request = {**scope(None, ("x-forwarded-for", "198.51.100.1")), "client": client}
    assert None is client_ip(trusted_proxies=PROXIES)(request)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("198.51.100.1", "ip:198.51.100.1"),
        ("6.6.6.6, 198.51.100.1, 10.0.0.1", "ip:198.51.100.1"),
        ("10.0.0.2, 10.0.0.1", "ip:10.0.0.2"),
        ("198.51.100.1, garbage", None),
        ("", None),
    ],
)
def test_a_trusted_unix_socket_peer_names_the_client_in_its_header(
    header: str, expected: str | None
) -> None:
    """With "unix" trusted, the forwarding header of a Unix-socket peer is walked as usual."""
    key = client_ip(trusted_proxies=["unix", *PROXIES])
    assert expected == key(scope(None, ("x-forwarded-for", header)))


def test_a_trusted_unix_socket_peer_with_the_forwarded_header() -> None:
    """The RFC 7239 header works behind a Unix socket too; no header at all means no key."""
    key = client_ip(trusted_proxies=[UNIX], header="forwarded")
    assert "ip:2001:db8::/64" == key(scope(None, ("forwarded", 'for="[2001:db8::7]:4711"')))
    assert None is key(scope(None))


def test_trusting_unix_sockets_trusts_no_address() -> None:
    """Trusting "unix" trusts Unix-socket peers only: an IP peer's header is still ignored."""
    key = client_ip(trusted_proxies=["unix"])
    assert (True, ()) == (key.trust_unix_socket, key.trusted_proxies)
    assert "ip:10.0.0.1" == key(scope("10.0.0.1", ("x-forwarded-for", "198.51.100.1")))


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        ("2001:db8:1:2::1", "ip:2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "ip:2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "ip:2001:db8:1:3::/64"),
        ("fe80::1%eth0", "ip:fe80::/64"),
        ("::ffff:198.51.100.7", "ip:198.51.100.7"),
        ("198.51.100.7", "ip:198.51.100.7"),
    ],
)
def test_ipv6_clients_are_keyed_by_their_slash_64(peer: str, expected: str) -> None:
    """Every address of one /64 is one client; IPv4-mapped addresses count as IPv4."""
    assert expected == client_ip()(scope(peer))


@pytest.mark.parametrize(
    ("ipv6_prefix", "expected"),
    [
        (128, "ip:2001:db8:1:2:3:4:5:6"),
        (56, "ip:2001:db8:1::/56"),
        (48, "ip:2001:db8:1::/48"),
        (1, "ip:::/1"),
    ],
)
def test_the_ipv6_prefix_is_configurable(ipv6_prefix: int, expected: str) -> None:
    """Shorter prefixes group more; 128 keys each address."""
    assert expected == client_ip(ipv6_prefix=ipv6_prefix)(scope("2001:db8:1:2:3:4:5:6"))


def test_a_forwarded_ipv6_client_is_grouped_but_trust_checks_use_whole_addresses() -> None:
    """The walk checks each full address against the proxies; only the client is grouped."""
    key = client_ip(trusted_proxies=["2001:db8:1:2::1"])
    request = scope("2001:db8:1:2::1", ("x-forwarded-for", "2001:db8:9::5, 2001:db8:1:2::2"))
    assert "ip:2001:db8:1:2::/64" == key(request)  # ::2 is not trusted: it is the client


@pytest.mark.parametrize("ipv6_prefix", [0, 129, -64, True, 64.0, "64", None])
def test_a_bad_ipv6_prefix_raises(ipv6_prefix: Any) -> None:
    """The prefix length is checked at construction."""
    with pytest.raises(ConfigurationError, match="ipv6_prefix must be an int from 1 to 128"):
        client_ip(ipv6_prefix=ipv6_prefix)


@pytest.mark.parametrize(
    ("proxies", "message"),
    [
        (["10.0.0.1/8"], "'10.0.0.1/8' is not an IP address or network"),
        (["proxy.internal"], "'proxy.internal' is not an IP address or network"),
        (["Unix"], "'Unix' is not an IP address or network (e.g. '10.0.0.0/8', '192.0.2.1', "),
        ([10], "trusted proxy must be a string like '10.0.0.0/8' or 'unix', got 10"),
        ("10.0.0.0/8", "not one string: write ['10.0.0.0/8']"),
    ],
)
def test_bad_trusted_proxies_raise(proxies: Any, message: str) -> None:
    """Bad trusted proxies are refused at construction with a clear message."""
    with pytest.raises(ConfigurationError) as info:
        client_ip(trusted_proxies=proxies)
    assert message in str(info.value)


def test_network_objects_are_accepted() -> None:
    """`ipaddress` networks may be given instead of strings."""
    network = ipaddress.ip_network("10.0.0.0/8")
    assert (network,) == client_ip(trusted_proxies=[network]).trusted_proxies


def test_bad_header_name_raises() -> None:
    """A header name must be an HTTP token."""
    with pytest.raises(ValueError, match="header must be an HTTP header name"):
        client_ip(header="x forwarded for")


def test_client_ip_config_is_validated_directly() -> None:
    """The dataclass checks its own fields, whatever built it."""
    with pytest.raises(ConfigurationError, match="trusted_proxies must hold ipaddress networks"):
        ClientIP(trusted_proxies=("10.0.0.0/8",))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="header must be lower case"):
        ClientIP(header="X-Forwarded-For")


def test_client_ip_is_frozen() -> None:
    """Configuration cannot change after it is built."""
    key = client_ip()
    with pytest.raises(AttributeError):
        key.header = "forwarded"  # type: ignore[misc]


def test_header_key_hashes_the_value() -> None:
    """API keys are keyed by a digest, never stored verbatim."""
    digest = hashlib.sha256(b"secret").hexdigest()[:32]
    assert f"x-api-key:{digest}" == header_key("X-API-Key")(scope(None, ("x-api-key", "secret")))


def test_header_key_plain_value_and_prefix() -> None:
    """Hashing can be turned off and the prefix chosen."""
    key = header_key("x-tenant", prefix="tenant:", hashed=False)
    assert "tenant:acme" == key(scope(None, ("x-tenant", " acme ")))


@pytest.mark.parametrize("headers", [(), (("x-api-key", "  "),), (("x-other", "secret"),)])
def test_header_key_missing_header_has_no_key(headers: tuple[tuple[str, str], ...]) -> None:
    """Requests without the header (or with a blank one) have no key."""
    assert None is header_key("x-api-key")(scope(None, *headers))


def test_header_key_bad_name_raises() -> None:
    """The header name is checked at construction."""
    with pytest.raises(ConfigurationError, match="lower-case HTTP header name"):
        header_key("x api key")
    with pytest.raises(ConfigurationError, match="lower-case HTTP header name"):
        HeaderKey(name="X-Api-Key", prefix="")


class _DisplayOnlyUser:
    """A user whose identity is not implemented, as in Starlette's BaseUser."""

    is_authenticated = True
    display_name = "Alice"

    @property
    def identity(self) -> str:
        """Not implemented."""
        raise NotImplementedError


class _NamelessUser:
    """An authenticated user without any usable name."""

    is_authenticated = True
    identity = ""


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        (SimpleUser("alice"), "user:alice"),
        (_DisplayOnlyUser(), "user:Alice"),
        (UnauthenticatedUser(), None),
        (_NamelessUser(), None),
        (object(), None),
    ],
)
def test_user_key(user: object, expected: str | None) -> None:
    """Authenticated users are keyed by identity (or display name); others have no key."""
    assert expected == user_key()(scope(None, user=user))


def test_user_key_without_user_in_scope() -> None:
    """A scope without authentication has no user key."""
    assert None is user_key(prefix="u:")(scope(None))


identities = st.text(alphabet="ab|/", max_size=8) | st.text()
"""Identities rich in pipes and slashes, and any text at all."""
routes = st.sampled_from([None, "/", "/login", "/login/admin", "/a|b", "/|", "/a||/b"])
"""The default policies (None) and path prefixes, some holding pipes of their own."""


@given(first=st.tuples(identities, routes), second=st.tuples(identities, routes))
def test_different_identity_route_pairs_never_share_a_key(
    first: tuple[str, str | None], second: tuple[str, str | None]
) -> None:
    """quota_key is injective: no identity can name another identity's quota on any route."""
    assume(first != second)
    keys = [quota_key(identity, route_suffix(route)) for identity, route in (first, second)]
    assert keys[0] != keys[1]


@pytest.mark.parametrize(
    ("identity", "route", "expected"),
    [
        ("ip:203.0.113.7", None, "ip:203.0.113.7"),
        ("ip:203.0.113.7", "/login", "ip:203.0.113.7|/login"),
        ("x|/login", None, "x||/login"),
        ("user:a|b", "/login", "user:a||b|/login"),
    ],
)
def test_quota_keys_keep_plain_identities_and_double_pipes(
    identity: str, route: str | None, expected: str
) -> None:
    """Identities without a pipe keep their keys; a route follows one pipe."""
    assert expected == quota_key(identity, route_suffix(route))


def test_header_key_without_a_name_says_what_a_name_is() -> None:
    """`header_key(os.environ.get(...))` with the variable unset raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match=r"name must be a header name, e\.g\. 'x-api-key'"):
        header_key(None)  # type: ignore[arg-type]  # the misuse under test
