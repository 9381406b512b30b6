"""Backend URL parsing: every accepted form, and clear errors for the rest."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scalepy.backends import (
    MemoryConfig,
    RedisClusterConfig,
    RedisConfig,
    parse_backend_url,
)
from scalepy.errors import ConfigurationError, InvalidBackendURL


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("memory://", MemoryConfig()),
        ("MEMORY://", MemoryConfig()),
        ("redis://localhost", RedisConfig(host="localhost")),
        ("redis://127.0.0.1:6380/3", RedisConfig(port=6380, db=3)),
        ("redis://h?db=2", RedisConfig(host="h", db=2)),
        ("redis://:s3cret@h", RedisConfig(host="h", password="s3cret")),
        ("redis://user@h", RedisConfig(host="h", username="user")),
        ("redis://us%40er:p%3Aw@h", RedisConfig(host="h", username="us@er", password="p:w")),
        (
            "redis://u:pa/ss@w:rd?#x@h:1/2",
            RedisConfig(host="h", port=1, db=2, username="u", password="pa/ss@w:rd?#x"),
        ),
        (
            "redis+cluster://:a/b@c@n:7000",
            RedisClusterConfig(nodes=(("n", 7000),), password="a/b@c"),
        ),
        ("redis://[::1]:7000/1", RedisConfig(host="::1", port=7000, db=1)),
        ("rediss://h", RedisConfig(host="h", ssl=True)),
        (
            "rediss://h?ssl_cert_reqs=none&ssl_ca_certs=/ca.pem",
            RedisConfig(host="h", ssl=True, ssl_cert_reqs="none", ssl_ca_certs="/ca.pem"),
        ),
        (
            "redis://h?timeout=0.25&connect_timeout=3&max_connections=7&client_name=api",
            RedisConfig(
                host="h", timeout=0.25, connect_timeout=3.0, max_connections=7, client_name="api"
            ),
        ),
        ("unix:///run/redis.sock", RedisConfig(unix_socket_path="/run/redis.sock")),
        ("unix:///run/redis.sock?db=4", RedisConfig(unix_socket_path="/run/redis.sock", db=4)),
        (
            "unix://:pw@/run/redis.sock",
            RedisConfig(unix_socket_path="/run/redis.sock", password="pw"),
        ),
        ("redis+cluster://a:7000", RedisClusterConfig(nodes=(("a", 7000),))),
        (
            "redis+cluster://u:p@a:7000,b:7001/",
            RedisClusterConfig(nodes=(("a", 7000), ("b", 7001)), username="u", password="p"),
        ),
        ("redis+cluster://a?timeout=2", RedisClusterConfig(nodes=(("a", 6379),), timeout=2.0)),
        ("rediss+cluster://a:7000/0", RedisClusterConfig(nodes=(("a", 7000),), ssl=True)),
    ],
)
def test_good_urls_parse_into_typed_configs(url: str, expected: object) -> None:
    """Each accepted URL form gives the configuration it spells."""
    assert expected == parse_backend_url(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("localhost:6379", "scheme must be one of"),
        ("http://h", "scheme must be one of"),
        ("memory://somewhere", "memory:// takes no host"),
        ("redis://h:0", "port must be between 1 and 65535"),
        ("redis://h:65536", "port must be between 1 and 65535"),
        ("redis://h:port", "port must be a whole number"),
        ("redis://h/zero", "db must be a whole number"),
        ("redis://h/-1", "db must be >= 0"),
        ("redis://h/1?db=2", "either in the path or as ?db="),
        ("redis://:6379", "missing host"),
        ("redis://[::1", "Invalid IPv6 URL"),
        ("redis+cluster://[::1", "malformed IPv6"),
        ("redis+cluster://[::1]7000", "malformed IPv6"),
        ("redis://h?colour=blue", "unknown option 'colour'"),
        ("redis://h?ssl_cert_reqs=none", "unknown option 'ssl_cert_reqs'"),
        ("redis://h?timeout=soon", "timeout must be a number of seconds"),
        ("redis://h?timeout=0", "timeout must be a finite number > 0"),
        ("redis://h?timeout=nan", "timeout must be a finite number > 0"),
        ("redis://h?max_connections=0", "max_connections must be >= 1"),
        ("rediss://h?ssl_cert_reqs=maybe", "ssl_cert_reqs must be"),
        ("unix://", "needs a socket path"),
        ("unix://host/run/redis.sock", "takes a socket path"),
        ("redis+cluster://", "at least one node"),
        ("redis+cluster://a:7000/2", "only has database 0"),
        ("redis+cluster://a:7000?db=1", "only has database 0"),
    ],
)
def test_bad_urls_raise_a_clear_error(url: str, reason: str) -> None:
    """A malformed URL raises InvalidBackendURL saying what is wrong."""
    with pytest.raises(InvalidBackendURL, match=re.escape(reason)) as raised:
        parse_backend_url(url)
    assert isinstance(raised.value, ValueError)
    assert reason in raised.value.reason


def test_errors_and_reprs_never_show_the_password() -> None:
    """Passwords are masked in errors, str() and repr()."""
    with pytest.raises(InvalidBackendURL) as raised:
        parse_backend_url("redis://user:hunter2@h:0")
    assert "hunter2" not in str(raised.value)
    config = parse_backend_url("redis://user:hunter2@h:1/2")
    assert "redis://user:***@h:1/2" == str(config)
    assert "hunter2" not in repr(config)
    cluster = parse_backend_url("rediss+cluster://:hunter2@a:1,[::1]:2")
    assert "rediss+cluster://:***@a:1,[::1]:2" == str(cluster)
    assert "unix://:***@/s.sock?db=0" == str(parse_backend_url("unix://:hunter2@/s.sock"))
    assert "redis://u@h:6379/0" == str(parse_backend_url("redis://u@h"))


def test_configs_validate_when_built_directly() -> None:
    """Building a config by hand checks the same rules as parsing."""
    with pytest.raises(ConfigurationError, match="port"):
        RedisConfig(port=70000)
    with pytest.raises(ConfigurationError, match="db"):
        RedisConfig(db=-1)
    with pytest.raises(ConfigurationError, match="at least one startup node"):
        RedisClusterConfig(nodes=())
    with pytest.raises(ConfigurationError, match="port"):
        RedisClusterConfig(nodes=(("a", 0),))
    assert "memory://" == str(MemoryConfig())


@given(
    host=st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True),
    port=st.integers(1, 65535),
    db=st.integers(0, 10_000),
    password=st.text(min_size=1, max_size=20).filter(lambda text: "\x00" not in text),
)
def test_parsing_round_trips_through_the_url_spelling(
    host: str, port: int, db: int, password: str
) -> None:
    """Host, port, db and any password (percent-encoded) survive parsing."""
    from urllib.parse import quote

    config = parse_backend_url(f"redis://:{quote(password, safe='')}@{host}:{port}/{db}")
    assert RedisConfig(host=host, port=port, db=db, password=password) == config


@given(
    scheme=st.sampled_from(["redis", "rediss", "unix", "redis+cluster", "memory", "http"]),
    rest=st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40),
)
def test_any_bad_url_raises_a_configuration_error(scheme: str, rest: str) -> None:
    """Whatever follows the scheme, parsing gives a config or raises InvalidBackendURL.

    Any other exception (a bare ValueError from a port, an IndexError) fails the test.
    """
    with contextlib.suppress(InvalidBackendURL):
        parse_backend_url(f"{scheme}://{rest}")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, "invalid backend URL 'None': a backend URL is a string (None: is the environment"),
        (6379, "invalid backend URL '6379': a backend URL is a string"),
    ],
)
def test_a_url_that_is_not_a_string_is_an_invalid_url(url: object, expected: str) -> None:
    """`parse_backend_url(os.environ.get(...))`, the variable unset, says so."""
    with pytest.raises(InvalidBackendURL) as raised:
        parse_backend_url(url)  # type: ignore[arg-type]  # the misuse under test
    assert str(raised.value).startswith(expected)
