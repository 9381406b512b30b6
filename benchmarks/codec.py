"""Typed value codecs: encode + decode of cached payloads, msgspec vs Pydantic vs stdlib json.

Run (msgspec from the `msgspec` extra, Pydantic from `dev`):

    .venv/bin/python benchmarks/codec.py [--calls 2000] [--rounds 5]

What scalepy does with a typed cached value (or job argument/result) is one
encode when it is stored and one decode, into the function's annotation, per
read from Redis. Each row times that round trip, `calls` times back to back,
with `time.perf_counter_ns` around the loop; rounds alternate between rows and
the median is shown. Every row gives back the same typed value (checked once).

- `msgspec json` / `msgspec msgpack`: an encoder and a typed decoder built once,
  as `scalepy._msgspec.MsgspecSerializer` does; what scalepy uses for
  annotations without Pydantic models.
- `pydantic TypeAdapter`: `dump_json` / `validate_json`, as
  `scalepy._pydantic.PydanticSerializer` does; what scalepy uses for annotations
  holding Pydantic models.
- `msgspec + pydantic hooks`: msgspec with `enc_hook=model_dump` and
  `dec_hook=model_validate`, the alternative for Pydantic models.
- `stdlib json`: `json.dumps(default=...)` and `json.loads`, then the value
  rebuilt by hand code written for the payload (what an application does today
  without a typed codec).

"ratio" is the row's time over the time of the codec scalepy picks for the
payload, in the same run. Figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import platform
import statistics
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from importlib.metadata import version
from typing import Any

import msgspec
import pydantic

UTC = datetime.UTC
RoundTrip = Callable[[Any], Any]


@dataclasses.dataclass(frozen=True)
class Todo:
    """The Todo example's item, as a repository returns it."""

    id: uuid.UUID
    title: str
    completed: bool
    order: int | None
    created_at: datetime.datetime


class TodoModel(pydantic.BaseModel):
    """The same item as a Pydantic model."""

    id: uuid.UUID
    title: str
    completed: bool
    order: int | None
    created_at: datetime.datetime


class Price(msgspec.Struct):
    """A msgspec Struct with a Decimal."""

    sku: str
    amount: Decimal
    valid_until: datetime.datetime


def _fields(i: int) -> dict[str, Any]:
    return {
        "id": uuid.UUID(int=i + 1),
        "title": f"write the report, part {i}",
        "completed": i % 3 == 0,
        "order": i if i % 2 else None,
        "created_at": datetime.datetime(2026, 12, 6, 7, i % 60, tzinfo=UTC),
    }


TODOS = [Todo(**_fields(i)) for i in range(50)]
MODELS = [TodoModel(**_fields(i)) for i in range(50)]
PRICES = {
    f"sku-{i}": Price(f"sku-{i}", Decimal(f"{i}.99"), datetime.datetime(2027, 1, 1, tzinfo=UTC))
    for i in range(20)
}
ROWS = [{"id": i, "title": f"item {i}", "tags": ["a", "b"], "score": i / 7} for i in range(50)]


def _default(value: Any) -> Any:
    if isinstance(value, (datetime.datetime, uuid.UUID, Decimal)):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, msgspec.Struct):
        return msgspec.structs.asdict(value)
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump()
    raise TypeError(type(value).__name__)


def _todo_fields(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        **raw,
        "id": uuid.UUID(raw["id"]),
        "created_at": datetime.datetime.fromisoformat(raw["created_at"]),
    }


def _rebuild_todos(raw: Any) -> Any:
    return [Todo(**_todo_fields(item)) for item in raw]


def _rebuild_models(raw: Any) -> Any:
    return [TodoModel(**_todo_fields(item)) for item in raw]


def _rebuild_prices(raw: Any) -> Any:
    return {
        key: Price(
            item["sku"],
            Decimal(item["amount"]),
            datetime.datetime.fromisoformat(item["valid_until"]),
        )
        for key, item in raw.items()
    }


def msgspec_row(annotation: Any, module: Any) -> RoundTrip:
    """The msgspec codec: encoder and typed decoder built once."""
    encode, decode = module.Encoder().encode, module.Decoder(annotation).decode
    return lambda value: decode(encode(value))


def hooks_row(annotation: Any) -> RoundTrip:
    """The msgspec codec, calling Pydantic through hooks."""

    def validate(kind: type[pydantic.BaseModel], raw: Any) -> Any:
        return kind.model_validate(raw)

    encode = msgspec.json.Encoder(enc_hook=lambda value: value.model_dump(mode="json")).encode
    decode = msgspec.json.Decoder(annotation, dec_hook=validate).decode
    return lambda value: decode(encode(value))


def pydantic_row(annotation: Any) -> RoundTrip:
    """Pydantic's TypeAdapter, JSON in one step."""
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(annotation)
    return lambda value: adapter.validate_json(adapter.dump_json(value))


def stdlib_row(rebuild: Callable[[Any], Any]) -> RoundTrip:
    """json.dumps(default=...) and json.loads, rebuilt by hand."""
    encoder = json.JSONEncoder(default=_default, separators=(",", ":"))
    return lambda value: rebuild(json.loads(encoder.encode(value).encode()))


PAYLOADS: dict[str, tuple[Any, Any, dict[str, RoundTrip], str]] = {
    "50 dataclasses (list[Todo])": (
        TODOS,
        list[Todo],
        {
            "msgspec json": msgspec_row(list[Todo], msgspec.json),
            "msgspec msgpack": msgspec_row(list[Todo], msgspec.msgpack),
            "pydantic TypeAdapter": pydantic_row(list[Todo]),
            "stdlib json": stdlib_row(_rebuild_todos),
        },
        "msgspec json",
    ),
    "20 Structs (dict[str, Price])": (
        PRICES,
        dict[str, Price],
        {
            "msgspec json": msgspec_row(dict[str, Price], msgspec.json),
            "msgspec msgpack": msgspec_row(dict[str, Price], msgspec.msgpack),
            "stdlib json": stdlib_row(_rebuild_prices),
        },
        "msgspec json",
    ),
    "50 plain dicts (list[dict[str, Any]])": (
        ROWS,
        list[dict[str, Any]],
        {
            "msgspec json": msgspec_row(list[dict[str, Any]], msgspec.json),
            "pydantic TypeAdapter": pydantic_row(list[dict[str, Any]]),
            "stdlib json": stdlib_row(lambda raw: raw),
        },
        "msgspec json",
    ),
    "50 Pydantic models (list[TodoModel])": (
        MODELS,
        list[TodoModel],
        {
            "pydantic TypeAdapter": pydantic_row(list[TodoModel]),
            "msgspec + pydantic hooks": hooks_row(list[TodoModel]),
            "stdlib json": stdlib_row(_rebuild_models),
        },
        "pydantic TypeAdapter",
    ),
}


def ns_per_round_trip(round_trip: RoundTrip, value: Any, calls: int) -> float:
    """Nanoseconds per encode + decode of `value`, over `calls` back-to-back round trips."""
    gc.collect()
    started = time.perf_counter_ns()
    for _ in range(calls):
        round_trip(value)
    return (time.perf_counter_ns() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    print(
        f"Python {platform.python_version()}, msgspec {version('msgspec')}, "
        f"pydantic {version('pydantic')}; {options.calls} round trips x {options.rounds} rounds"
    )
    print(f"{'payload':<40} {'codec':<26} {'us/round trip':>14} {'ratio':>7}")
    for payload, (value, _annotation, rows, chosen) in PAYLOADS.items():
        for name, round_trip in rows.items():
            assert value == round_trip(value), f"{name} changed {payload}"
            ns_per_round_trip(round_trip, value, max(1, options.calls // 10))  # warm-up
        timings: dict[str, list[float]] = {name: [] for name in rows}
        for _ in range(options.rounds):
            for name, round_trip in rows.items():
                timings[name].append(ns_per_round_trip(round_trip, value, options.calls))
        medians = {name: statistics.median(values) for name, values in timings.items()}
        for name, ns in sorted(medians.items(), key=lambda item: item[1]):
            mark = " <- scalepy" if name == chosen else ""
            print(
                f"{payload:<40} {name:<26} {ns / 1000:>14.1f} {ns / medians[chosen]:>6.2f}x{mark}"
            )


if __name__ == "__main__":
    main()
