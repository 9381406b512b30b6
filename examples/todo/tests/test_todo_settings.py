"""Settings: read from TODO_* variables, validated at startup, dev secrets refused in prod."""

from __future__ import annotations

import pytest

from todo.settings import DEV_JWT_SECRET, Rate, Settings, SettingsError

SECRET = "s" * 32


def test_the_defaults_are_for_development() -> None:
    """With no variable set: dev, JWT auth with the dev secret, local PostgreSQL and Redis."""
    settings = Settings.from_env({})
    assert Settings() == settings
    assert ("dev", "jwt", DEV_JWT_SECRET) == (settings.env, settings.auth, settings.jwt_secret)
    assert not settings.single_process
    assert DEV_JWT_SECRET not in repr(settings)  # secrets stay out of logs


def test_variables_are_read_and_typed() -> None:
    """Every kind of value: choices, URLs, lists, rates, numbers."""
    settings = Settings.from_env(
        {
            "TODO_ENV": "prod",
            "TODO_JWT_SECRET": SECRET,
            "TODO_REDIS_URL": "memory://",
            "TODO_TRUSTED_PROXIES": "unix, 10.0.0.0/8",
            "TODO_CORS_ORIGINS": "https://a.example,http://localhost:3000",
            "TODO_RATE_LIMIT": "50/10s",
            "TODO_WRITE_RATE_LIMIT": "5/min",
            "TODO_LOG_LEVEL": "debug",
            "TODO_MAX_BODY_BYTES": "1024",
            "TODO_DB_BREAKER_OPEN_FOR": "2.5",
            "TODO_CACHE_LOCAL_SIZE": "0",
            "TODO_DRAIN_DELAY": "0",
            "TODO_SHEDDING": "false",
            "TODO_UNRELATED": "ignored",
        }
    )
    assert settings.single_process
    assert not settings.shedding
    assert ("unix", "10.0.0.0/8") == settings.trusted_proxies
    assert ("https://a.example", "http://localhost:3000") == settings.cors_origins
    assert (Rate(50, 10.0), Rate(5, 60.0)) == (settings.rate_limit, settings.write_rate_limit)
    assert ("DEBUG", 1024, 2.5, 0, 0.0) == (
        settings.log_level,
        settings.max_body_bytes,
        settings.db_breaker_open_for,
        settings.cache_local_size,
        settings.drain_delay,
    )


@pytest.mark.parametrize(
    ("text", "rate"),
    [("100/second", Rate(100, 1.0)), ("20/min", Rate(20, 60.0)), ("5/10s", Rate(5, 10.0)),
     ("1000/hour", Rate(1000, 3600.0)), (" 7 / 2 d ", Rate(7, 172800.0))],
)  # fmt: skip
def test_rates_are_read(text: str, rate: Rate) -> None:
    """`N/unit` and `N/Xunit`."""
    assert rate == Rate.parse(text)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"TODO_ENV": "staging"}, "TODO_ENV: Invalid enum value 'staging'"),
        ({"TODO_AUTH": "basic"}, "TODO_AUTH: Invalid enum value 'basic'"),
        ({"TODO_DATABASE_URL": "mysql://x/y"}, "TODO_DATABASE_URL must be a postgresql://"),
        ({"TODO_REDIS_URL": "http://cache"}, "TODO_REDIS_URL"),
        ({"TODO_TRUSTED_PROXIES": "nginx"}, "'nginx' is neither a network nor 'unix'"),
        ({"TODO_CORS_ORIGINS": "a.example"}, "TODO_CORS_ORIGINS: a CORS origin is scheme://host"),
        ({"TODO_CORS_ORIGINS": "https://a.example/"}, "no path or trailing slash"),
        ({"TODO_CORS_ORIGINS": "*,https://a.example"}, "list it alone"),
        ({"TODO_RATE_LIMIT": "lots"}, "TODO_RATE_LIMIT='lots': expected N/period"),
        ({"TODO_WRITE_RATE_LIMIT": "0/s"}, "must be positive"),
        ({"TODO_MAX_BODY_BYTES": "big"}, "TODO_MAX_BODY_BYTES: Expected `int`, got `str`"),
        ({"TODO_MAX_BODY_BYTES": "0"}, "TODO_MAX_BODY_BYTES must be at least 1"),
        ({"TODO_DB_BREAKER_OPEN_FOR": "-1"}, "TODO_DB_BREAKER_OPEN_FOR must be a positive"),
        ({"TODO_CACHE_TTL": "inf"}, "TODO_CACHE_TTL must be a positive"),
        ({"TODO_DRAIN_DELAY": "-0.5"}, "TODO_DRAIN_DELAY must be 0 or a positive"),
        ({"TODO_NAMESPACE": "a b"}, "TODO_NAMESPACE must be"),
        ({"TODO_LOG_LEVEL": "chatty"}, "TODO_LOG_LEVEL must be one of"),
    ],
)
def test_a_bad_value_names_its_variable(variables: dict[str, str], message: str) -> None:
    """A bad value stops the process at startup, with the variable's name in the message."""
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(variables)


def test_prod_refuses_the_dev_secret() -> None:
    """TODO_ENV=prod with the (public) development secret, or none at all, is refused."""
    for variables in (
        {"TODO_ENV": "prod"},
        {"TODO_ENV": "prod", "TODO_JWT_SECRET": DEV_JWT_SECRET},
    ):
        with pytest.raises(SettingsError, match="TODO_JWT_SECRET is the development secret"):
            Settings.from_env(variables)


def test_prod_refuses_a_short_secret_and_accepts_a_long_one() -> None:
    """A production HS256 secret has at least 32 bytes."""
    with pytest.raises(SettingsError, match="at least 32 bytes"):
        Settings(env="prod", jwt_secret="s" * 31)
    assert SECRET == Settings(env="prod", jwt_secret=SECRET).jwt_secret


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("env", "staging", "TODO_ENV must be one of dev, prod"),
        ("auth", "basic", "TODO_AUTH must be one of jwt, none"),
    ],
)
def test_a_bad_choice_is_refused_when_built_in_code(field: str, value: str, message: str) -> None:
    """Settings built directly (tests, scripts) are checked as the environment's are."""
    with pytest.raises(SettingsError, match=message):
        Settings(**{field: value})  # type: ignore[arg-type] # the wrong value is the point


def test_dev_accepts_the_dev_secret() -> None:
    """On a laptop the default secret is fine."""
    assert DEV_JWT_SECRET == Settings(env="dev").jwt_secret
