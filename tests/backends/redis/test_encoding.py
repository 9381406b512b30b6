r"""RESP encoding: a command that cannot be encoded fails alone; the connection stays in step.

A hostile argument (a lone surrogate, as JSON's `"\ud800"` decodes, NaN, None,
an empty command) must fail only its own caller, with `SerializationError`, before
anything of its tick's pipeline is written; every other caller of that tick and of
every later tick gets exactly its own reply.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalepy.backends.redis import RedisClient
from scalepy.backends.redis._command import encode_command, leading_arguments
from scalepy.cache import Cache
from scalepy.errors import SerializationError
from scalepy.ratelimit import RateLimiter, TokenBucket

if TYPE_CHECKING:
    from collections.abc import Sequence

SURROGATE_KEY = "user:\ud800"  # json.loads('"user:\\ud800"')

UNENCODABLE: list[Any] = [
    SURROGATE_KEY,
    "\udfff",
    None,
    True,
    object(),
    bytearray(b"x"),
    math.nan,
    math.inf,
    -math.inf,
]


async def gather(client: RedisClient, commands: Sequence[tuple[Any, ...]]) -> list[object]:
    """Run `commands` concurrently on `client` (one tick, one pipeline); replies or errors."""
    replies: list[object] = await asyncio.gather(
        *(client.execute(*command) for command in commands), return_exceptions=True
    )
    return replies


@pytest.mark.parametrize("argument", UNENCODABLE, ids=repr)
async def test_an_unencodable_argument_fails_alone_and_keeps_replies_in_step(
    redis: RedisClient, argument: object
) -> None:
    """Its caller gets SerializationError; its neighbours, then and later, get their replies."""
    first = await gather(redis, [("ECHO", "alice"), ("ECHO", argument), ("ECHO", "bob")])
    assert [b"alice", b"bob"] == [first[0], first[2]]
    assert isinstance(first[1], SerializationError)
    assert isinstance(first[1], ValueError)
    later = await gather(redis, [("ECHO", "carol"), ("ECHO", "dave")])
    assert [b"carol", b"dave"] == later


async def test_an_empty_command_is_refused(redis: RedisClient) -> None:
    """An empty command would get no reply from Redis (and shift every later one): refused."""
    replies = await gather(redis, [("ECHO", "alice"), (), ("ECHO", "bob")])
    assert [b"alice", b"bob"] == [replies[0], replies[2]]
    assert isinstance(replies[1], SerializationError)
    assert "empty command" in str(replies[1])


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (("SET", "k", SURROGATE_KEY), "argument 2 of SET is a str with a lone surrogate"),
        (("GET", None), "argument 1 of GET is a NoneType"),
        (("ECHO", math.nan), "argument 1 of ECHO is nan"),
        (("ECHO", -math.inf), "argument 1 of ECHO is -inf"),
        ((SURROGATE_KEY,), "argument 0 of '?' is a str with a lone surrogate"),
    ],
)
async def test_the_error_names_the_argument_without_echoing_it(
    redis: RedisClient, command: tuple[Any, ...], message: str
) -> None:
    """The message says which argument of which command is wrong and what is accepted."""
    with pytest.raises(SerializationError) as caught:
        await redis.execute(*command)
    assert message in str(caught.value)
    assert "str, bytes, int or finite float" in str(caught.value)
    assert "user:" not in str(caught.value)  # a value may be a secret: never echoed


def expected_reply(argument: str | bytes | int | float) -> bytes:
    """What Redis echoes back for an argument: its UTF-8, its digits, or its repr."""
    if isinstance(argument, bytes):
        return argument
    if isinstance(argument, str):
        return argument.encode()
    return repr(argument).encode()


sendable = st.one_of(
    st.text(st.characters(codec="utf-8")),  # NUL included, lone surrogates not
    st.binary(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(0, 2**20).map(lambda size: b"\0\r\n" * size),  # huge, RESP-like bytes
)
lone_surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
unencodable = st.one_of(
    st.tuples(st.text(), lone_surrogate, st.text()).map("".join),
    st.sampled_from(UNENCODABLE),
)
arguments = st.lists(
    st.one_of(sendable.map(lambda value: (True, value)), unencodable.map(lambda v: (False, v))),
    min_size=1,
    max_size=12,
)


async def each_caller_gets_its_own_reply(url: str, mixed: list[tuple[bool, Any]]) -> None:
    """One tick of SETs and ECHOs, then one of GETs, each mixed with unencodable commands.

    A good argument is written to a key of its own and echoed, then read back; a bad
    one is tried in the same places. `None` in the expected replies stands for
    SerializationError.
    """
    token = uuid.uuid4().hex
    writes: list[tuple[Any, ...]] = []
    reads: list[tuple[Any, ...]] = []
    expected_writes: list[bytes | None] = []
    expected_reads: list[bytes | None] = []
    for index, (good, value) in enumerate(mixed):
        key = f"scalepy-test:{token}:{index}"  # expires by itself: PX
        writes += [("SET", key, value, "PX", 60_000), ("ECHO", value)]
        reads.append(("GET", key if good else value))
        expected_writes += [b"OK", expected_reply(value)] if good else [None, None]
        expected_reads.append(expected_reply(value) if good else None)
    async with RedisClient.from_url(url) as client:
        replies = await gather(client, writes) + await gather(client, reads)
    outcomes = [None if isinstance(reply, SerializationError) else reply for reply in replies]
    assert expected_writes + expected_reads == outcomes


@pytest.mark.parametrize("which", ["standalone", "cluster"])
@settings(max_examples=60, deadline=None)
@given(mixed=arguments)
def test_every_good_caller_gets_exactly_its_reply(
    which: str, redis_url: str, cluster_url: str, mixed: list[tuple[bool, Any]]
) -> None:
    """Arbitrary arguments in one tick: each good caller gets its reply, each bad one an error."""
    url = redis_url if which == "standalone" else cluster_url
    asyncio.run(each_caller_gets_its_own_reply(url, mixed))


async def test_a_surrogate_key_does_not_hand_the_cache_another_callers_value(
    redis_url: str,
) -> None:
    """Bob never reads alice's cached value because a hostile key was read in the same tick."""
    namespace = f"scalepy-test-{uuid.uuid4().hex}"
    async with Cache(redis_url, namespace=namespace, ttl=60) as cache:
        await cache.set("alice", "alice's value")
        await cache.set("bob", "bob's value")
        for _ in range(3):
            replies: list[object] = await asyncio.gather(
                cache.get("alice"),
                cache.get(SURROGATE_KEY),
                cache.get("bob"),
                return_exceptions=True,
            )
            assert ["alice's value", "bob's value"] == [replies[0], replies[2]]


async def test_a_surrogate_key_does_not_swap_rate_limit_decisions(redis_url: str) -> None:
    """The exhausted client stays denied and the fresh one allowed next to a hostile key.

    The key space spells a lone surrogate as escaped bytes: the hostile key is limited
    as its own key, in the same batch as the others, each reply going to its caller.
    """
    policy = TokenBucket(capacity=1, refill_rate=0.001)
    namespace = f"scalepy-test-{uuid.uuid4().hex}"
    async with RateLimiter(redis_url, namespace=namespace) as limiter:
        assert (await limiter.acquire("alice", policy)).allowed
        alice, hostile, bob = await asyncio.gather(
            limiter.acquire("alice", policy),
            limiter.acquire(SURROGATE_KEY, policy),
            limiter.acquire("bob", policy),
            return_exceptions=True,
        )
        assert not isinstance(alice, BaseException)
        assert not isinstance(hostile, BaseException)
        assert not isinstance(bob, BaseException)
        assert (False, True, True) == (alice.allowed, hostile.allowed, bob.allowed)
        assert (False, False) == tuple(
            decision.allowed
            for decision in await asyncio.gather(
                limiter.acquire("alice", policy), limiter.acquire("bob", policy)
            )
        )


@given(command=st.lists(sendable, min_size=1, max_size=6), count=st.integers(0, 8))
def test_leading_arguments_reads_back_what_was_encoded(
    command: list[str | bytes | int | float], count: int
) -> None:
    """The cluster router reads a command's name and key from its bytes, as they were given."""
    expected = [expected_reply(argument) for argument in command[:count]]
    assert expected == leading_arguments(encode_command(tuple(command)), count)
