"""Cached values keep their type: decoded by the function's return annotation, on every store."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import decimal
import logging
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING, Any

import msgspec
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalepy.cache import Cache, MemoryCacheStore
from scalepy.errors import ConfigurationError
from scalepy.serializers import MsgpackSerializer
from scalepy.testing import RecordingInstrumentation

if TYPE_CHECKING:
    from collections.abc import Callable

UTC = datetime.UTC


@dataclasses.dataclass(frozen=True)
class Todo:
    """A dataclass, as a repository returns it."""

    id: int
    title: str
    due: datetime.datetime | None = None


@dataclasses.dataclass(frozen=True)
class TodoV2:
    """`Todo` after a deploy changed its shape: `title` became a number."""

    id: int
    title: int


class Point(msgspec.Struct, frozen=True):
    """A msgspec Struct."""

    x: float
    y: float


class Invoice(pydantic.BaseModel):
    """A Pydantic model with the types JSON cannot spell."""

    id: uuid.UUID
    total: decimal.Decimal
    issued: datetime.datetime
    lines: list[str]


text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
moments = st.datetimes(timezones=st.none() | st.just(UTC))
finite = st.floats(allow_nan=False, allow_infinity=False)
amounts = st.decimals(allow_nan=False, allow_infinity=False, places=4)
todos = st.builds(Todo, id=st.integers(-(2**63), 2**63 - 1), title=text, due=st.none() | moments)

FAMILIES: dict[str, tuple[Any, st.SearchStrategy[Any]]] = {
    "datetime": (datetime.datetime, moments),
    "uuid": (uuid.UUID, st.uuids()),
    "decimal": (decimal.Decimal, amounts),
    "dataclass list": (list[Todo], st.lists(todos, max_size=4)),
    "optional dataclass": (Todo | None, st.none() | todos),
    "dict of datetimes": (dict[str, datetime.datetime], st.dictionaries(text, moments, max_size=4)),
    "tuple": (tuple[int, str, bytes], st.tuples(st.integers(), text, st.binary(max_size=8))),
    "struct": (
        list[Point],
        # JSON has no spelling for NaN and infinities: msgspec writes null (see docs/cache.md)
        st.lists(st.builds(Point, x=finite, y=finite)),
    ),
    "pydantic": (
        Invoice,
        st.builds(Invoice, id=st.uuids(), total=amounts, issued=moments, lines=st.lists(text)),
    ),
}


def returning(annotation: Any, values: list[Any]) -> Callable[[], Any]:
    """An async function annotated to return `annotation`, returning `values` in turn."""

    async def produce() -> Any:
        return values.pop(0)

    produce.__annotations__ = {"return": annotation}
    return produce


async def round_trip(cache: Cache, annotation: Any, value: Any) -> tuple[Any, Any]:
    """Cache `value` through a function returning `annotation`; return the first two calls."""
    loaded = [value, "second load"]
    cached = cache.cached(ttl=60, key="value")(returning(annotation, loaded))
    first = await cached()
    second = await cached()
    assert ["second load"] == loaded  # the second call was a hit
    return first, second


def backend(name: str, redis_url: str) -> str:
    """The URL of the store a test runs on."""
    return "memory://" if name == "memory" else redis_url


@pytest.mark.parametrize("name", ["memory", "redis"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_hit_returns_the_annotated_type(family: str, name: str, redis_url: str) -> None:
    """Whatever the type family, a hit equals what the function returned, with its types."""
    annotation, values = FAMILIES[family]

    @settings(max_examples=25 if name == "redis" else 60, deadline=None)
    @given(value=values)
    def check(value: Any) -> None:
        async def run() -> tuple[Any, Any]:
            async with Cache(
                backend(name, redis_url), namespace=f"typed-{uuid.uuid4()}", timeout=5
            ) as cache:
                return await round_trip(cache, annotation, value)

        first, second = asyncio.run(run())
        assert (value, value) == (first, second)
        assert type(value) is type(second)
        assert [type(item) for item in _items(value)] == [type(item) for item in _items(second)]

    check()


def _items(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, dict):
        return [*value, *value.values()]
    return [value]


async def test_messagepack_keeps_the_type_too() -> None:
    """With the MessagePack serializer, a hit is again the annotated type, Pydantic's included."""
    due = datetime.datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    invoice = Invoice(id=uuid.uuid4(), total=decimal.Decimal("9.90"), issued=due, lines=["a"])
    async with Cache("memory://", serializer=MsgpackSerializer(), local_max_size=0) as cache:
        assert (Todo(1, "a", due),) * 2 == await round_trip(cache, Todo, Todo(1, "a", due))
        await cache.clear()
        assert (invoice, invoice) == await round_trip(cache, Invoice, invoice)


async def test_l1_hits_in_front_of_redis_keep_the_type(redis_url: str) -> None:
    """The L1 holds the value decoded as Redis would give it back: typed, L1 hits included."""
    namespace = f"typed-{uuid.uuid4()}"
    async with Cache(redis_url, namespace=namespace, timeout=5, local_max_size=10) as cache:
        await cache.open()
        _, second = await round_trip(cache, list[Todo], [Todo(1, "a")])
        assert ([Todo(1, "a")], 1) == (second, cache.statistics().local_hits)


async def test_a_bulk_loader_s_values_keep_their_type(redis_url: str) -> None:
    """`cached_many` decodes each item into the `V` of its `Mapping[K, V]`."""
    loads: list[list[int]] = []
    async with Cache(redis_url, namespace=f"typed-{uuid.uuid4()}", timeout=5) as cache:

        @cache.cached_many(ttl=60)
        async def todos(ids: list[int]) -> dict[int, Todo]:
            loads.append(ids)
            return {i: Todo(i, f"t{i}") for i in ids}

        assert {1: Todo(1, "t1")} == await todos([1])
        assert {1: Todo(1, "t1"), 2: Todo(2, "t2")} == await todos([1, 2])
    assert [[1], [2]] == loads  # the second call read 1 back, as a Todo


async def test_a_forward_reference_is_resolved_at_the_first_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A return type defined after the decoration is looked up when the function first runs."""
    async with Cache("memory://", local_max_size=0) as cache:
        cached = cache.cached(ttl=60)(returning("DefinedLater", [Todo(1, "a")]))
        monkeypatch.setitem(globals(), "DefinedLater", Todo)
        assert [Todo(1, "a")] * 2 == [await cached(), await cached()]


async def test_a_hit_is_a_copy_of_its_own_without_the_l1(redis_url: str) -> None:
    """With the L1 off, each hit decodes its own value: mutating one changes no other."""
    async with Cache(redis_url, namespace=f"typed-{uuid.uuid4()}", timeout=5) as cache:
        _, second = await round_trip(cache, list[Todo], [Todo(1, "a")])
        second.append(Todo(2, "b"))
        assert [Todo(1, "a")] == await cache.cached(ttl=60, key="value")(
            returning(list[Todo], [])
        )()


@pytest.mark.parametrize("name", ["memory", "redis"])
async def test_a_value_that_cannot_be_encoded_is_returned_uncached_with_one_warning(
    name: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An untyped function returning a datetime: every call loads, one WARNING, all counted."""
    metrics = RecordingInstrumentation()
    moment = datetime.datetime(2026, 12, 6, tzinfo=UTC)
    async with Cache(
        backend(name, redis_url),
        namespace=f"typed-{uuid.uuid4()}",
        instrumentation=metrics,
        timeout=5,
    ) as cache:
        cached = cache.cached(ttl=60)(returning(Any, [moment] * 3))
        with caplog.at_level(logging.WARNING, "scalepy.cache"):
            assert [moment] * 3 == [await cached(), await cached(), await cached()]
        assert 3 == cache.statistics().loads
    assert 3 == metrics.value("scalepy.cache.values.unencodable")
    warnings = [record for record in caplog.records if "cannot be serialized" in record.message]
    assert 1 == len(warnings)


@pytest.mark.parametrize("name", ["memory", "redis"])
async def test_a_payload_of_an_older_type_is_a_miss_and_is_rewritten(
    name: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A deploy changed the return type: the old entry reads as a miss, counted and logged once."""
    metrics = RecordingInstrumentation()
    namespace = f"typed-{uuid.uuid4()}"
    store: MemoryCacheStore | str = MemoryCacheStore() if name == "memory" else redis_url
    async with (
        Cache(store, namespace=namespace, timeout=5) as before,
        Cache(store, namespace=namespace, instrumentation=metrics, timeout=5) as after,
    ):
        await before.cached(ttl=60, key="todo")(returning(Todo, [Todo(1, "a")]))()
        loaded = [TodoV2(1, 7), TodoV2(1, 8)]
        changed = after.cached(ttl=60, key="todo")(returning(TodoV2, loaded))
        with caplog.at_level(logging.WARNING, "scalepy.cache"):
            assert [TodoV2(1, 7)] * 2 == [await changed(), await changed()]
        assert [TodoV2(1, 8)] == loaded  # the first call loaded, the second hit the rewrite
    # Counted per read: with Redis, the miss reads again as it takes the load lock.
    assert metrics.value("scalepy.cache.entries.undecodable") in {1, 2}
    assert 1 == len([r for r in caplog.records if "does not decode" in r.message])


async def test_an_annotation_naming_an_undefined_class_stays_plain_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A name imported only under TYPE_CHECKING: values stay plain JSON, and a WARNING says so."""
    async with Cache("memory://", local_max_size=0) as cache:
        cached = cache.cached(ttl=60)(returning("Undefined", [{"id": 1}]))
        with caplog.at_level(logging.WARNING, "scalepy"):
            assert [{"id": 1}] * 2 == [await cached(), await cached()]
    assert 1 == len([r for r in caplog.records if "import it at run time" in r.message])


def test_a_union_msgspec_cannot_decode_stays_plain_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two dataclasses in one union: msgspec cannot tell them apart, so values stay plain."""
    cache = Cache("memory://")
    with caplog.at_level(logging.WARNING, "scalepy"):
        cache.cached(returning(Todo | TodoV2, []))
    assert 1 == len([r for r in caplog.records if "come back as plain data" in r.message])


def test_without_msgspec_a_type_json_cannot_keep_is_refused_at_decoration() -> None:
    """No msgspec: `-> datetime` raises ConfigurationError with the fix; `-> dict` stays JSON."""
    program = """
import datetime, sys
sys.modules["msgspec"] = None  # as if not installed
from scalepy.cache import Cache
from scalepy.errors import ConfigurationError
cache = Cache("memory://")
async def plain() -> dict[str, list[int]]: ...
async def moment() -> datetime.datetime: ...
cache.cached(plain)
try:
    cache.cached(moment)
except ConfigurationError as exc:
    print(exc)
"""
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    assert "pip install 'scalepy-toolkit[msgspec]'" in result.stdout
    assert "moment returns or takes datetime" in result.stdout
    assert issubclass(ConfigurationError, ValueError)
