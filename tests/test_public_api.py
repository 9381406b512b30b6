"""The public surface: each public module's __all__, and what `import scalepy` loads."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

PUBLIC_MODULES = (
    "scalepy",
    "scalepy.errors",
    "scalepy.backends",
    "scalepy.backends.guard",
    "scalepy.backends.keys",
    "scalepy.backends.redis",
    "scalepy.serializers",
    "scalepy.clock",
    "scalepy.telemetry",
    "scalepy.testing",
    "scalepy.integrations.opentelemetry",
    "scalepy.integrations.prometheus",
    "scalepy.cache",
    "scalepy.ratelimit",
    "scalepy.ratelimit.asgi",
    "scalepy.retry",
    "scalepy.bulkhead",
    "scalepy.shedding",
    "scalepy.shedding.asgi",
    "scalepy.breaker",
    "scalepy.health",
    "scalepy.integrations.starlette",
    "scalepy.integrations.fastapi",
    "scalepy.queue",
    "scalepy.cli",
    "scalepy.pools",
)

# Modules that must load with the standard library alone (no extra installed).
STDLIB_ONLY = (
    "scalepy",
    "scalepy.errors",
    "scalepy.backends",
    "scalepy.serializers",
    "scalepy.clock",
    "scalepy.telemetry",
    "scalepy.testing",
    "scalepy.cache",
    "scalepy.ratelimit",
    "scalepy.bulkhead",
    "scalepy.shedding",
    "scalepy.breaker",
    "scalepy.health",
    "scalepy.cli",
)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_matches_the_public_names(module_name: str) -> None:
    """__all__ is a tuple of existing names listing every public class and function.

    Public means defined in the module itself or in one of its private submodules.
    """
    module = importlib.import_module(module_name)
    exported = module.__all__
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and (value.__module__ == module_name or value.__module__.startswith(f"{module_name}._"))
    }
    assert isinstance(exported, tuple)
    assert [] == [name for name in exported if not hasattr(module, name)]
    assert set() == public - set(exported)


def test_import_scalepy_loads_only_the_standard_library() -> None:
    """`import scalepy` and the core modules pull in no third-party module."""
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        f"import {', '.join(STDLIB_ONLY)}\n"
        "print(sorted({name.partition('.')[0] for name in set(sys.modules) - before}\n"
        "      - set(sys.stdlib_module_names) - {'scalepy'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "[]" == result.stdout.strip()


@pytest.mark.parametrize(
    ("module_name", "blocked", "extra"),
    [
        ("scalepy.backends.redis", "redis", "redis"),
        ("scalepy.integrations.opentelemetry", "opentelemetry", "otel"),
        ("scalepy.integrations.prometheus", "prometheus_client", "prometheus"),
        ("scalepy.retry", "tenacity", "retry"),
        ("scalepy.pools", "asyncpg", "postgres"),
        ("scalepy.pools", "tenacity", "postgres"),
        ("scalepy.integrations.starlette", "starlette", "starlette"),
        ("scalepy.integrations.fastapi", "fastapi", "fastapi"),
        ("scalepy._msgspec", "msgspec", "msgspec"),
    ],
)
def test_optional_modules_name_their_extra_when_it_is_missing(
    module_name: str, blocked: str, extra: str
) -> None:
    """Without its dependency, an optional module fails with the pip command to run."""
    code = (
        "import sys\n"
        f"sys.modules[{blocked!r}] = None  # as if not installed\n"
        "try:\n"
        f"    import {module_name}\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert f"pip install 'scalepy-toolkit[{extra}]'" in result.stdout


@pytest.mark.parametrize(
    ("module_name", "names"),
    [
        ("scalepy.cache", ("MemoryCacheStore", "RedisCacheStore")),
        ("scalepy.ratelimit", ("MemoryRateLimitStore", "RedisRateLimitStore")),
        ("scalepy.queue", ("MemoryQueueStore", "RedisQueueStore")),
    ],
)
def test_each_primitive_exports_its_store_classes(module_name: str, names: tuple[str, ...]) -> None:
    """The memory and Redis stores are public names of their primitive's package."""
    module = importlib.import_module(module_name)
    assert [] == [name for name in names if name not in module.__all__]
    assert [] == [name for name in names if not inspect.isclass(getattr(module, name))]


def test_cache_store_abilities_are_separate_protocols() -> None:
    """Each optional ability of a cache store is its own protocol; each store claims its own.

    The memory store has none (one process); the Redis store has the lock and pub/sub.
    """
    import scalepy.cache as cache

    abilities = (cache.LockingCacheStore, cache.PubSubCacheStore, cache.SharedCacheStore)
    assert [True] * 3 == [cache.CacheStore in ability.__mro__ for ability in abilities]
    assert (False, False, False) == tuple(
        isinstance(cache.MemoryCacheStore(), ability) for ability in abilities
    )
    assert (True, True, True) == tuple(
        issubclass(cache.RedisCacheStore, ability) for ability in abilities
    )


def test_queue_store_abilities_are_separate_protocols() -> None:
    """Each optional ability of a queue store is its own protocol; each store claims its own.

    The memory store lives in one event loop, so it cannot open itself in a thread.
    """
    import scalepy.queue as queue
    from scalepy.backends.redis import RedisClient

    abilities = (
        queue.WakingQueueStore,
        queue.AnnouncingQueueStore,
        queue.OrderedAcksQueueStore,
        queue.ConnectingQueueStore,
    )
    assert [True] * 4 == [queue.QueueStore in ability.__mro__ for ability in abilities]
    assert (True, True, True, False) == tuple(
        isinstance(queue.MemoryQueueStore(), ability) for ability in abilities
    )
    redis_store = queue.RedisQueueStore(RedisClient.from_url("redis://127.0.0.1:1"), "q")
    assert (True, True, True, True) == tuple(
        isinstance(redis_store, ability) for ability in abilities
    )


@pytest.mark.parametrize(
    "contract", ["CacheStoreContract", "QueueStoreContract", "RateLimitStoreContract"]
)
def test_scalepy_testing_ships_a_store_contract_per_primitive(contract: str) -> None:
    """Each contract is a plain class of async checks, importable without a test framework."""
    import scalepy.testing as testing

    checks = [getattr(getattr(testing, contract), name) for name in dir(getattr(testing, contract))]
    checks = [check for check in checks if getattr(check, "__name__", "").startswith("test_")]
    assert contract in testing.__all__
    assert (True, True) == (
        len(checks) >= 5,
        all(inspect.iscoroutinefunction(check) for check in checks),
    )
    assert "test_agrees_with_the_memory_reference" in [check.__name__ for check in checks]


def test_a_redis_store_without_the_extra_names_it() -> None:
    """`scalepy.cache` imports without redis; its Redis store then fails with the pip command."""
    code = (
        "import sys\n"
        "sys.modules['redis'] = None  # as if not installed\n"
        "import scalepy.cache\n"
        "try:\n"
        "    scalepy.cache.RedisCacheStore\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "pip install 'scalepy-toolkit[redis]'" in result.stdout


@pytest.mark.parametrize(
    ("qualified_name", "backend_types"),
    [
        ("scalepy.cache.Cache", "str | BackendConfig | RedisClient | CacheStore"),
        ("scalepy.ratelimit.RateLimiter", "str | BackendConfig | RedisClient | RateLimitStore"),
        ("scalepy.queue.Queue", "str | BackendConfig | RedisClient | QueueStore"),
    ],
)
def test_every_primitive_takes_a_client_and_defaults_to_memory(
    qualified_name: str, backend_types: str
) -> None:
    """`backend` takes a URL, a config or a `RedisClient` (default `memory://`); `owns_client`."""
    module_name, _, class_name = qualified_name.rpartition(".")
    parameters = inspect.signature(getattr(importlib.import_module(module_name), class_name))
    backend = parameters.parameters["backend"]
    owns_client = parameters.parameters["owns_client"]
    assert (backend_types, "memory://") == (backend.annotation, backend.default)
    assert (inspect.Parameter.KEYWORD_ONLY, False) == (owns_client.kind, owns_client.default)


def test_a_redis_client_has_timeout_views() -> None:
    """`RedisClient.with_timeout(seconds, *, close_parent=False)` is part of the surface."""
    from scalepy.backends.redis import RedisClient

    parameters = inspect.signature(RedisClient.with_timeout).parameters
    assert ["self", "seconds", "close_parent"] == list(parameters)
    assert False is parameters["close_parent"].default
