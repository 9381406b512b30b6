"""`BreakerRegistry` and the public surface of `scalepy.breaker`."""

from __future__ import annotations

import inspect

import pytest

import scalepy.breaker
from scalepy.breaker import BreakerRegistry, BreakerState, CircuitBreaker
from scalepy.errors import ConfigurationError
from scalepy.testing import FakeClock, RecordingInstrumentation


def test_get_or_create_returns_one_breaker_per_name() -> None:
    """The first call creates the breaker; later calls return the same object."""
    registry = BreakerRegistry()
    db = registry.get_or_create("db", failure_rate_threshold=0.25)
    assert db is registry.get_or_create("db")
    assert db is registry.get_or_create("db", failure_rate_threshold=0.25)
    assert db is registry.get("db")
    assert 0.25 == db.config.failure_rate_threshold
    assert registry.get_or_create("cache") is not db
    assert ["db", "cache"] == [breaker.name for breaker in registry]
    assert 2 == len(registry)
    assert "db" in registry
    assert "BreakerRegistry(breakers=['cache', 'db'])" == repr(registry)


def test_equal_defaults_do_not_conflict() -> None:
    """Spelling out a default value describes the same configuration."""
    registry = BreakerRegistry()
    db = registry.get_or_create("db")
    assert db is registry.get_or_create("db", minimum_calls=20, record=(Exception,))


@pytest.mark.parametrize(
    "options",
    [{"failure_rate_threshold": 0.5}, {"record": ValueError}, {"timeout": 1.0}],
)
def test_conflicting_configuration_is_refused(options: dict[str, object]) -> None:
    """Asking for an existing name with different options raises `ConfigurationError`."""
    registry = BreakerRegistry()
    registry.get_or_create("db", failure_rate_threshold=0.25)
    with pytest.raises(ConfigurationError, match="'db' already exists"):
        registry.get_or_create("db", **options)  # type: ignore[arg-type]


def test_unknown_name() -> None:
    """`get()` of an unknown name raises `KeyError` listing the known ones."""
    registry = BreakerRegistry()
    registry.get_or_create("db")
    with pytest.raises(KeyError, match=r"no circuit breaker 'api'; known: \['db'\]"):
        registry.get("api")


def test_registry_passes_its_clock_and_instrumentation() -> None:
    """Every breaker uses the registry's clock and instrumentation."""
    clock = FakeClock()
    instrumentation = RecordingInstrumentation()
    registry = BreakerRegistry(clock=clock, instrumentation=instrumentation)
    breaker = registry.get_or_create("db", open_for=5.0)
    breaker.force_open()
    forced = {"scalepy.breaker.name": "db", "scalepy.breaker.state": "forced_open"}
    assert 1.0 == instrumentation.value("scalepy.breaker.state", forced)
    assert {"db": BreakerState.FORCED_OPEN} == {
        name: statistics.state for name, statistics in registry.statistics().items()
    }
    registry.get_or_create("db", open_for=5.0)  # the comparison records nothing
    # The state set, once at start (CLOSED) and once when forced: five states each time.
    assert 10 == instrumentation.count("scalepy.breaker.state")


def test_all_lists_the_public_names() -> None:
    """`__all__` is a tuple naming every public class of the package, and only those."""
    exported = scalepy.breaker.__all__
    public = {
        name
        for name, value in vars(scalepy.breaker).items()
        if not name.startswith("_") and inspect.isclass(value)
    }
    assert isinstance(exported, tuple)
    assert public == set(exported)
    assert CircuitBreaker is scalepy.breaker.CircuitBreaker
