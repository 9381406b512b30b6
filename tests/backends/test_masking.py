"""No password reaches an error message, a repr or a log line, whatever it holds.

`mask_url` is the one function every URL and DSN scalepy prints goes through;
these tests feed it, the URL parser and the PostgreSQL pools passwords made of
any printable characters, `/`, `@`, `:`, `%`, quotes and spaces included.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import string
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalepy.backends import parse_backend_url
from scalepy.cache import Cache
from scalepy.errors import BackendUnavailable, InvalidBackendURL
from scalepy.pools import PoolOptions, PostgresConfig, PostgresPool

_PRINTABLE = st.text(alphabet=string.printable.strip() + " ", min_size=4, max_size=12)
PASSWORDS = (
    st.tuples(_PRINTABLE, st.sampled_from("^|~"), _PRINTABLE)
    .map("".join)
    .filter(lambda password: password.strip() == password)
)
"""Printable passwords (`/`, `@`, `:`, `%`, `'`, `\\`, `#`, `?` and inner spaces included).

Each holds one of `^|~`, which no message or repr spells: a password such as
`PostgreS` would otherwise be "found" in the fixed text `a PostgreSQL DSN`."""


def libpq_quoted(password: str) -> str:
    """`password` as a quoted keyword-DSN value, escaped as libpq reads it."""
    return "'" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"


@given(password=PASSWORDS)
def test_mask_url_hides_any_password_in_any_form(password: str) -> None:
    """Raw, percent-encoded, query-parameter and keyword-DSN passwords are all masked whole."""
    from scalepy.backends import mask_url  # new with this test: the others run on older code

    encoded = quote(password, safe="")
    assert "redis://app:***@cache:6379/0" == mask_url(f"redis://app:{password}@cache:6379/0")
    assert "redis://app:***@cache:6379/0" == mask_url(f"redis://app:{encoded}@cache:6379/0")
    assert "postgresql://db/app?sslmode=require&password=***" == mask_url(
        f"postgresql://db/app?sslmode=require&password={encoded}"
    )
    assert "host=db password=*** dbname=app" == mask_url(
        f"host=db password={libpq_quoted(password)} dbname=app"
    )


@given(password=PASSWORDS)
def test_url_errors_and_reprs_never_show_the_password(password: str) -> None:
    """Bad Redis URLs raise InvalidBackendURL naming the masked URL; good ones print masked."""
    for url in (f"redis://app:{password}@cache:0/1", f"redis://app:{password}@cache/x"):
        with pytest.raises(InvalidBackendURL) as raised:
            parse_backend_url(url)
        assert "redis://app:***@cache" == raised.value.url.partition(":0")[0].partition("/x")[0]
        assert password not in str(raised.value)
        assert password not in repr(raised.value)
    config = parse_backend_url(f"redis://app:{password}@cache:6380/2")
    assert "redis://app:***@cache:6380/2" == str(config)
    assert password not in repr(config)
    with pytest.raises(InvalidBackendURL) as keyword:
        parse_backend_url(f"host=cache password={libpq_quoted(password)}")
    assert password not in str(keyword.value)


@given(password=PASSWORDS)
def test_postgres_dsn_errors_and_reprs_never_show_the_password(password: str) -> None:
    """A bad port or a keyword DSN raises InvalidBackendURL; reprs show the DSN masked."""
    for dsn in (
        f"postgresql://app:{password}@db:99999/app",
        f"postgresql://app:{password}@db:port/app",
        f"host=db password={libpq_quoted(password)}",
    ):
        with pytest.raises(InvalidBackendURL) as raised:
            PostgresConfig(dsn=dsn)
        assert password not in str(raised.value)
    config = PostgresConfig(dsn=f"postgresql://app:{password}@db:5432/app")
    assert "postgresql://app:***@db:5432/app" in repr(config)
    assert password not in repr(config)


@pytest.mark.parametrize(
    ("dsn", "reason"),
    [
        ("postgresql://app@db:99999/app", "port must be between 1 and 65535"),
        ("postgresql://app@db:abc/app", "port must be a whole number"),
        ("postgresql://app@[::1/app", "malformed IPv6 address"),
        ("postgres://app:pw@a:5432,b:0/app", "port must be between 1 and 65535"),
    ],
)
def test_bad_postgres_dsns_raise_configuration_errors_when_built(dsn: str, reason: str) -> None:
    """A malformed host or port fails when the pool is built, not as a bare ValueError later."""
    with pytest.raises(InvalidBackendURL, match=reason):
        PostgresPool(dsn)


@pytest.mark.parametrize(
    ("option", "reason"),
    [
        ("sslmode=bogus", "`sslmode` parameter must be one of"),
        ("target_session_attrs=bogus", "target_session_attrs"),
    ],
)
async def test_bad_postgres_dsn_options_raise_configuration_errors_on_open(
    postgres_dsn: str, option: str, reason: str
) -> None:
    """An option the driver refuses before connecting is a configuration error, not an outage.

    As `BackendUnavailable` it read as a server that may come back, and was retried.
    """
    separator = "&" if "?" in postgres_dsn else "?"
    pool = PostgresPool(f"{postgres_dsn}{separator}password=hunt3r-2&{option}")
    with pytest.raises(InvalidBackendURL, match=reason) as raised:
        await pool.open()
    await pool.aclose()
    assert "hunt3r-2" not in str(raised.value) + repr(raised.value)


async def test_a_raw_slash_in_the_password_reaches_postgres_whole(postgres_dsn: str) -> None:
    """A DSN whose password holds a raw `/` connects (asyncpg used to read part of it as a port).

    The test server trusts local connections, so any password logs in once the DSN
    is read correctly; before, asyncpg raised a bare ValueError quoting the password.
    """
    scheme, _, rest = postgres_dsn.partition("://")
    user, _, location = rest.rpartition("@")
    user = user.partition(":")[0]
    dsn = f"{scheme}://{user}:pa/ss:w@rd@{location}"
    pool = PostgresPool(dsn, options=PoolOptions(min_size=1, max_size=1))
    async with pool, pool.acquire() as connection:
        assert 1 == await connection.fetchval("SELECT 1")
    assert "pa/ss" not in repr(pool)


class Lines(logging.Handler):
    """Keeps every formatted log line."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the line."""
        self.lines.append(self.format(record))


@settings(max_examples=25, deadline=None)
@given(password=PASSWORDS)
def test_degraded_logs_and_ping_errors_never_show_the_password(password: str) -> None:
    """A cache on a port nothing listens on logs and raises with the password masked."""
    with socket.socket() as probe:  # a port that refuses connections
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cache = Cache(f"redis://app:{password}@127.0.0.1:{port}/0", namespace="masking")
    lines = Lines()
    logger = logging.getLogger("scalepy")
    logger.addHandler(lines)
    level = logger.level
    logger.setLevel(logging.DEBUG)

    async def use() -> str:
        async with cache:
            await cache.get("key")
            with pytest.raises(BackendUnavailable) as raised:
                await cache.ping()
            return f"{raised.value}\n{raised.value!r}\n{cache!r}"

    try:
        text = asyncio.run(use())
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)
    assert any("is degraded: redis://app:***@127.0.0.1" in line for line in lines.lines)
    assert password not in "\n".join([text, *lines.lines])
