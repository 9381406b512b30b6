"""PoolOptions and PostgresConfig: validation at construction, masked DSNs."""

from __future__ import annotations

import math
from typing import Any

import pytest

from scalepy.errors import ConfigurationError, InvalidBackendURL
from scalepy.pools import PoolOptions, PostgresConfig, mask_dsn


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"min_size": -1}, "min_size must be an int >= 0"),
        ({"max_size": 0}, "max_size must be an int >= 1"),
        ({"max_size": True}, "max_size must be an int >= 1"),
        ({"min_size": 5, "max_size": 4}, r"min_size \(5\) must not exceed max_size \(4\)"),
        ({"acquire_timeout": math.inf}, "acquire_timeout must be a finite number > 0"),
        ({"acquire_timeout": 0}, "acquire_timeout must be a finite number > 0"),
        ({"connect_timeout": -1.0}, "connect_timeout must be a finite number > 0"),
        ({"command_timeout": 0}, "command_timeout must be a finite number >= "),
        ({"max_lifetime": math.nan}, "max_lifetime must be a finite number >= "),
        ({"lifetime_jitter": 1.0}, r"lifetime_jitter must be in \[0, 1\)"),
        ({"lifetime_jitter": -0.1}, "lifetime_jitter must be a finite number >= 0"),
        ({"max_idle": 0}, "max_idle must be a finite number >= "),
        ({"validate_after_idle": -1}, "validate_after_idle must be a finite number >= 0"),
        ({"leak_threshold": 0}, "leak_threshold must be a finite number >= "),
        ({"statement_cache_size": -1}, "statement_cache_size must be an int >= 0"),
        ({"pgbouncer": True, "statement_cache_size": 50}, "pgbouncer=True needs"),
        ({"server_settings": {"jit": 0}}, "server_settings must map setting names"),
    ],
)
def test_invalid_options_are_rejected(given: dict[str, Any], message: str) -> None:
    """Each invalid option raises ConfigurationError saying what is allowed."""
    with pytest.raises(ConfigurationError, match=message):
        PoolOptions(**given)


def test_options_are_frozen_with_a_read_only_copy_of_the_settings() -> None:
    """The settings mapping is copied and read-only, so the options stay what they were."""
    settings = {"jit": "off"}
    options = PoolOptions(server_settings=settings, validate_after_idle=0)
    settings["jit"] = "on"

    assert {"jit": "off"} == dict(options.server_settings)
    with pytest.raises(TypeError):
        options.server_settings["jit"] = "on"  # type: ignore[index]  # proving it is read-only


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("postgresql://app:s3cret@db:5432/app", "postgresql://app:***@db:5432/app"),
        ("postgres://app@db/app", "postgres://app@db/app"),
        (
            "postgresql://db/app?sslmode=require&password=s3cret",
            "postgresql://db/app?sslmode=require&password=***",
        ),
        (
            "postgresql://a:p@h1:5432,h2:5433/app?PASSWORD=x&x=1",
            "postgresql://a:***@h1:5432,h2:5433/app?PASSWORD=***&x=1",
        ),
    ],
)
def test_mask_dsn_hides_every_password(dsn: str, expected: str) -> None:
    """Passwords in the user info and in the query are masked; nothing else changes."""
    assert expected == mask_dsn(dsn)


def test_config_repr_masks_the_password() -> None:
    """repr() of a PostgresConfig never shows the password."""
    config = PostgresConfig(dsn="postgresql://app:s3cret@db/app", name="orders")

    assert "s3cret" not in repr(config)
    assert "postgresql://app:***@db/app" in repr(config)


@pytest.mark.parametrize("dsn", ["mysql://app:s3cret@db/app", "db/app", "redis://h"])
def test_config_rejects_other_urls_without_leaking_the_password(dsn: str) -> None:
    """A DSN that is not postgresql:// raises InvalidBackendURL with the password masked."""
    with pytest.raises(InvalidBackendURL, match="postgresql:// or postgres://") as caught:
        PostgresConfig(dsn=dsn)

    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize("name", ["", 3])
def test_config_rejects_empty_names(name: Any) -> None:
    """A pool name must be a non-empty string."""
    with pytest.raises(ConfigurationError, match="name must be a non-empty string"):
        PostgresConfig(dsn="postgresql://db/app", name=name)


def test_dsn_must_be_a_string() -> None:
    """A DSN of another type is a ConfigurationError, not a crash later."""
    with pytest.raises(ConfigurationError, match="DSN must be a string"):
        PostgresConfig(dsn=b"postgresql://db/app")  # type: ignore[arg-type]  # the wrong type on purpose
