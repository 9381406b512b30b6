"""The pure parts: entry bytes, freshness verdicts, the L1's bounds and single flight."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

# The pure parts the cache is built from, tested directly: none has a public name.
from scalepy.cache._entry import decode_entry, encode_entry
from scalepy.cache._flight import Abandoned, Flight
from scalepy.cache._local import LocalCache, LocalEntry
from scalepy.cache._policy import MAX_TTL, Policy, Verdict, judge, xfetch_horizon
from scalepy.errors import ConfigurationError

tags = st.lists(st.tuples(st.text(min_size=1), st.integers(0, 2**64 - 1)), max_size=4)


@given(
    payload=st.binary(),
    is_none=st.booleans(),
    stale_window=st.floats(0, 1e6),
    load_time=st.floats(0, 1e6),
    tags=tags,
)
def test_entries_round_trip(
    payload: bytes,
    is_none: bool,
    stale_window: float,
    load_time: float,
    tags: list[tuple[str, int]],
) -> None:
    """What is encoded decodes back, durations to the millisecond."""
    entry = decode_entry(
        encode_entry(
            payload,
            is_none=is_none,
            stale_window=stale_window,
            load_time=load_time,
            tags=tuple(tags),
        )
    )
    assert (b"" if is_none else payload) == entry.payload
    assert is_none == entry.is_none
    assert stale_window == pytest.approx(entry.stale_window, abs=0.0005)
    assert load_time == pytest.approx(entry.load_time, abs=0.0005)
    assert tuple(tags) == entry.tags


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01",
        b"\x03" + bytes(11),
        b"\x01" + bytes(11) + b"payload",
        bytes([2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 9]),
        b"\x02\x01" + bytes(10) + b"x",
    ],
    ids=[
        "empty",
        "truncated",
        "newer-format",
        "older-format",
        "truncated-tag",
        "none-with-payload",
    ],
)
def test_foreign_bytes_do_not_decode(data: bytes) -> None:
    """Truncated, foreign, older or newer entries raise ValueError (the cache counts a miss)."""
    with pytest.raises(ValueError, match=r"entry|payload"):
        decode_entry(data)


POLICY = Policy(ttl=60, stale_ttl=10, stale_if_error=30, xfetch_beta=1.0)


@pytest.mark.parametrize(
    ("remaining", "expected"),
    [
        (90.0, Verdict.FRESH),
        (30.5, Verdict.FRESH),
        (30.0, Verdict.STALE),
        (20.5, Verdict.STALE),
        (20.0, Verdict.STALE_IF_ERROR),
        (0.5, Verdict.STALE_IF_ERROR),
    ],
)
def test_verdicts_follow_the_remaining_ttl(remaining: float, expected: Verdict) -> None:
    """Fresh while more than the stale window remains, then stale, then stale-if-error."""
    assert expected == judge(remaining, 30.0, 0.0, POLICY, 1.0)


def test_a_reader_with_shorter_windows_expires_sooner() -> None:
    """The stale windows of the reader's policy apply to what the writer left."""
    strict = Policy(ttl=60)
    assert Verdict.EXPIRED == judge(29.0, 30.0, 0.0, strict, 1.0)


def test_xfetch_refreshes_early_with_growing_probability() -> None:
    """Near expiry, a slow value is refreshed early; far from it, never."""
    assert Verdict.REFRESH == judge(30.1, 30.0, 1.0, POLICY, 0.5)  # 0.1 s left, 1 s loads
    assert Verdict.FRESH == judge(90.0, 30.0, 1.0, POLICY, 1e-9)  # 60 s left
    assert Verdict.FRESH == judge(30.1, 30.0, 1.0, Policy(ttl=60, xfetch_beta=0), 1e-9)
    assert xfetch_horizon(100.0, 1.0, 1.0) == 80.0
    assert math.exp(-20) < 1e-8  # beyond the horizon the chance is negligible


def test_fresh_lifetimes_are_jittered_down_and_none_has_its_own() -> None:
    """Jitter shortens by up to its fraction; negative_ttl governs None; 0 disables it."""
    policy = Policy(ttl=100, jitter=0.2, negative_ttl=5)
    assert 100 == policy.fresh_lifetime(False, 0.0)
    assert 80 == pytest.approx(policy.fresh_lifetime(False, 1.0))
    assert 5 == policy.fresh_lifetime(True, 0.0)
    assert 0 == Policy(ttl=100, negative_ttl=0).fresh_lifetime(True, 0.5)
    assert 100 == Policy(ttl=100, jitter=0).fresh_lifetime(True, 0.5)


@pytest.mark.parametrize(
    "options",
    [
        {"ttl": 0},
        {"ttl": -1},
        {"ttl": math.inf},
        {"ttl": 1, "stale_ttl": -1},
        {"ttl": 1, "jitter": 1},
        {"ttl": 1, "negative_ttl": -1},
        {"ttl": MAX_TTL, "stale_if_error": 1},
    ],
)
def test_invalid_policies_are_rejected(options: dict[str, Any]) -> None:
    """Durations must be finite, non-negative (ttl positive) and fit an entry header."""
    with pytest.raises(ConfigurationError):
        Policy(**options)


def local_entry(
    size: int = 10, tags: tuple[str, ...] = (), expires_at: float = 100.0
) -> LocalEntry:
    """An L1 entry fresh until `expires_at`."""
    return LocalEntry(
        value=size,
        size=size,
        expires_at=expires_at,
        fresh_until=expires_at,
        refresh_from=expires_at,
        load_time=0.0,
        tags=tags,
    )


def test_the_l1_is_bounded_by_entries_and_bytes() -> None:
    """The least recently used values go first; an oversized value is not held."""
    local = LocalCache(max_entries=3, max_bytes=100)
    for key in "abc":
        local.put(key, local_entry(), local.generation)
    assert local.get("a", 0.0) is not None  # a is now the most recently used
    local.put("d", local_entry(), local.generation)
    assert [None, 10, 10, 10] == [getattr(local.get(k, 0.0), "value", None) for k in "bacd"]
    local.put("e", local_entry(size=75), local.generation)
    assert (3, 95) == (len(local), local.bytes)  # a went: c, d, e remain
    local.put("f", local_entry(size=101), local.generation)
    assert local.get("f", 0.0) is None
    local.put("e", local_entry(size=5), local.generation)
    assert 25 == local.bytes


def test_a_reweighed_entry_keeps_the_l1_in_bounds() -> None:
    """A value decoded in place takes its new size: others leave, or it does when too large."""
    local = LocalCache(max_entries=10, max_bytes=100)
    for key in "abc":
        local.put(key, local_entry(size=30), local.generation)
    c = local.get("c", 0.0)
    assert c is not None
    local.reweigh("c", c, 50)
    assert (2, 80) == (len(local), local.bytes)  # a went, the least recently used
    local.reweigh("c", c, 101)
    assert (1, 30, None) == (len(local), local.bytes, local.get("c", 0.0))
    local.reweigh("c", c, 20)  # no longer held: nothing to reweigh
    assert 30 == local.bytes


def test_the_l1_expires_and_drops_by_key_tag_and_all() -> None:
    """Expired values vanish; tag and key invalidations drop exactly their values."""
    local = LocalCache(max_entries=10, max_bytes=1000)
    local.put("a", local_entry(tags=("t1", "t2")), 0)
    local.put("b", local_entry(tags=("t2",)), 0)
    local.put("c", local_entry(expires_at=5.0), 0)
    assert local.get("c", 5.0) is None
    local.discard_tags(["t1", "unknown"])
    assert (local.get("a", 0.0), len(local)) == (None, 1)
    local.discard(["b", "x"])
    assert 0 == len(local)
    local.put("a", local_entry(), local.generation)
    local.clear()
    assert (0, 0) == (len(local), local.bytes)
    assert "entries=0/10" in repr(local)


def test_the_l1_ignores_reads_older_than_an_invalidation() -> None:
    """A value read before an invalidation is not stored after it."""
    local = LocalCache(max_entries=10, max_bytes=1000)
    generation = local.generation
    local.discard(["a"])
    local.put("a", local_entry(), generation)
    assert local.get("a", 0.0) is None


async def test_followers_get_the_leaders_result_or_start_over() -> None:
    """A result or error reaches every follower; a cancelled leader makes them retry."""
    flight = Flight()
    first, second = flight.join(), flight.join()
    second.cancel()
    flight.resolve(42)
    assert (42, 2, False) == (await first, len(flight), flight.invalidated)
    failing = Flight()
    error = failing.join()
    failing.fail(KeyError("x"))
    with pytest.raises(KeyError):
        await error
    abandoned = Flight()
    retry = abandoned.join()
    abandoned.fail(asyncio.CancelledError())
    with pytest.raises(Abandoned):
        await retry
