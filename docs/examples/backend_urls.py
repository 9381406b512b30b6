"""Backend URLs: parsed into frozen, validated configurations that are safe to log."""

from __future__ import annotations

from scalepy.backends import (
    MemoryConfig,
    RedisClusterConfig,
    RedisConfig,
    parse_backend_url,
)
from scalepy.errors import ConfigurationError, InvalidBackendURL


def main() -> None:
    """Parse each URL form and show what the configuration holds."""
    assert isinstance(parse_backend_url("memory://"), MemoryConfig)

    config = parse_backend_url(
        "redis://app:s3cret@cache.internal:6380/2?timeout=0.5&client_name=api"
    )
    assert isinstance(config, RedisConfig)
    assert (config.host, config.port, config.db) == ("cache.internal", 6380, 2)
    assert (config.username, config.password) == ("app", "s3cret")
    assert (config.timeout, config.connect_timeout) == (0.5, 2.0)  # connect_timeout: default
    # str() is the URL with the password masked: safe for logs and error messages.
    assert str(config) == "redis://app:***@cache.internal:6380/2"
    assert "s3cret" not in repr(config)

    socket = parse_backend_url("unix:///run/redis/redis.sock?db=1")
    assert isinstance(socket, RedisConfig)
    assert (socket.unix_socket_path, socket.db) == ("/run/redis/redis.sock", 1)

    tls = parse_backend_url("rediss://cache.internal?ssl_cert_reqs=none")
    assert isinstance(tls, RedisConfig)
    assert (tls.ssl, tls.ssl_cert_reqs, tls.port) == (True, "none", 6379)

    cluster = parse_backend_url("redis+cluster://10.0.0.1:7000,10.0.0.2:7000?timeout=0.25")
    assert isinstance(cluster, RedisClusterConfig)
    assert cluster.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 7000))

    # A malformed URL says what is accepted instead.
    for url, reason in [
        ("mysql://localhost", "the scheme must be one of"),
        ("redis://localhost?pool=5", "unknown option 'pool'"),
        ("redis+cluster://10.0.0.1:7000/3", "Redis Cluster only has database 0"),
        ("redis://localhost:99999", "port must be between 1 and 65535"),
    ]:
        try:
            parse_backend_url(url)
        except InvalidBackendURL as exc:
            assert reason in exc.reason, exc.reason
        else:
            raise AssertionError(f"{url} must be rejected")

    # Configurations validate their values when built directly too.
    try:
        RedisConfig(timeout=0)
    except ConfigurationError as exc:
        assert "timeout must be a finite number > 0" in str(exc)
    else:
        raise AssertionError("a zero timeout must be rejected")


if __name__ == "__main__":
    main()
