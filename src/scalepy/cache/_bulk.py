"""Bulk lookups for `cached_many`: L1, shared flights, one backend tick, one load of the misses.

Each item has its own key, entry and flight, exactly as a single lookup would:
items another caller is already loading are waited for, not loaded twice.
Backend reads of all remaining items go out in one tick (one pipeline), and the
items still missing are loaded by one call of the bulk function. There is no
cross-process lock per item: across processes, a cold item may be loaded by
each process that misses it at the same moment.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any, TypeVar

from scalepy.cache._engine import SERVED, UNAVAILABLE
from scalepy.cache._entry import Found
from scalepy.cache._flight import Abandoned, Flight

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from scalepy.cache._engine import Engine, Read
    from scalepy.cache._policy import Policy

__all__ = ("fetch_many",)

K = TypeVar("K")


async def fetch_many(
    engine: Engine,
    keys: dict[K, str],
    load: Callable[[list[K]], Awaitable[Mapping[K, Any]]],
    policy: Policy,
    tags: dict[K, tuple[str, ...]],
) -> dict[K, Any]:
    """Return every item's value (`None` when the loader left it out), in `keys`' order."""
    results: dict[K, Any] = {}
    now = engine.clock.now()
    joined: dict[K, asyncio.Future[Any]] = {}
    owned: dict[str, Flight] = {}
    for item, key in keys.items():
        hit = engine.tier.get(key, now)
        if hit is not None:
            engine.meter.hit("l1")
            results[item] = hit.value
        elif (flight := engine.flights.get(key)) is not None:
            engine.meter.joined()
            joined[item] = flight.join()
        else:
            owned[key] = engine.flights[key] = Flight()
    if owned:
        mine = {item: key for item, key in keys.items() if key in owned and item not in joined}
        try:
            values = await _resolve(engine, mine, load, policy, tags, owned)
        except BaseException as exc:
            for flight in owned.values():
                flight.fail(exc)
            raise
        finally:
            for key, flight in owned.items():
                engine.land(key, flight)
        for item, key in mine.items():
            owned[key].resolve(values[item])
        results.update(values)
    for item, future in joined.items():
        try:
            results[item] = await future
        except Abandoned:  # its loader was cancelled: load it here
            results.update(await fetch_many(engine, {item: keys[item]}, load, policy, tags))
    return {item: results[item] for item in keys}


async def _resolve(
    engine: Engine,
    keys: dict[K, str],
    load: Callable[[list[K]], Awaitable[Mapping[K, Any]]],
    policy: Policy,
    tags: dict[K, tuple[str, ...]],
    flights: dict[str, Flight],
) -> dict[K, Any]:
    engine.tier.start_soon()
    generation = engine.tier.generation
    reads = await asyncio.gather(
        *(engine.read(key, tags[item], policy) for item, key in keys.items())
    )
    results: dict[K, Any] = {}
    missing: list[tuple[K, Read]] = []
    for (item, key), read in zip(keys.items(), reads, strict=True):
        found = read.found
        if isinstance(found, Found) and found.verdict in SERVED:
            one = functools.partial(_load_one, load, item)
            engine.serve(key, found, policy, generation, one, tags[item], None)
            results[item] = found.value
        else:
            if found is UNAVAILABLE:
                engine.meter.error()
            else:
                engine.meter.miss()
            missing.append((item, read))
    if missing:
        loaded = await _load_missing(engine, keys, load, policy, tags, flights, missing, generation)
        results.update(loaded)
    return results


async def _load_missing(
    engine: Engine,
    keys: dict[K, str],
    load: Callable[[list[K]], Awaitable[Mapping[K, Any]]],
    policy: Policy,
    tags: dict[K, tuple[str, ...]],
    flights: dict[str, Flight],
    missing: list[tuple[K, Read]],
    generation: int,
) -> dict[K, Any]:
    try:
        loaded, load_time = await engine.run_loader(lambda: load([item for item, _ in missing]))
    except Exception:
        stale: dict[K, Any] = {}
        for item, read in missing:
            if not isinstance(read.found, Found):
                raise  # an item has no stale value within stale-if-error to serve
            stale[item] = read.found.value
            engine.meter.served_stale("l2")
        return stale
    values = {item: loaded.get(item) for item, _ in missing}
    await asyncio.gather(
        *(
            engine.writer.write(
                keys[item],
                values[item],
                policy,
                tags[item],
                read.versions,
                load_time,
                generation,
                flight=flights[keys[item]],
            )
            for item, read in missing
        )
    )
    return values


async def _load_one(load: Callable[[list[K]], Awaitable[Mapping[K, Any]]], item: K) -> Any:
    return (await load([item])).get(item)
