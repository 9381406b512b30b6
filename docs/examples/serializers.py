"""Serializers: strict JSON by default, compact msgpack, and signed pickle stored in Redis."""

from __future__ import annotations

import asyncio
import math
import os
import pickle
import secrets
import uuid
from dataclasses import dataclass

from scalepy.backends import KeySpace
from scalepy.backends.redis import RedisClient
from scalepy.errors import SerializationError, SignatureError
from scalepy.serializers import JsonSerializer, MsgpackSerializer, PickleSerializer, Serializer

REDIS_URL = os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass(frozen=True)
class Session:
    """Something JSON cannot hold, but pickle can."""

    user_id: int
    roles: frozenset[str]


def json_and_msgpack() -> None:
    """Round-trip plain data, and show what each format rejects or changes."""
    json = JsonSerializer()
    assert json.dumps({"id": 1, "tags": ["a", "é"]}) == '{"id":1,"tags":["a","é"]}'.encode()
    assert json.loads(json.dumps({"pair": (1, 2)})) == {"pair": [1, 2]}  # tuples become lists
    for bad in (math.nan, {1, 2}):
        try:
            json.dumps(bad)
        except SerializationError:  # a ValueError too
            pass
        else:
            raise AssertionError(f"{bad!r} is not JSON")

    msgpack = MsgpackSerializer()  # needs the `msgpack` extra
    assert msgpack.loads(msgpack.dumps({"raw": b"\x00\xff"})) == {"raw": b"\x00\xff"}

    # Every serializer satisfies the Serializer protocol.
    formats: list[Serializer] = [json, msgpack]
    assert [serializer.name for serializer in formats] == ["json", "msgpack"]


async def signed_pickle() -> None:
    """Store a signed pickle in Redis, then show that tampered data is refused."""
    key = secrets.token_bytes(32)  # in production: from your secret store
    serializer = PickleSerializer(key)
    session = Session(user_id=7, roles=frozenset({"admin"}))
    (redis_key,) = KeySpace("scalepy:docs:serializers").keys(uuid.uuid4().hex, "session")

    async with RedisClient.from_url(REDIS_URL) as redis:
        try:
            await redis.execute("SET", redis_key, serializer.dumps(session), "EX", 60)
            assert serializer.loads(await redis.execute("GET", redis_key)) == session

            # Someone with write access to Redis flips one byte of the payload:
            # the signature no longer verifies, and nothing is unpickled.
            await redis.execute("SETRANGE", redis_key, 40, b"X")
            try:
                serializer.loads(await redis.execute("GET", redis_key))
            except SignatureError:
                pass
            else:
                raise AssertionError("tampered data must be refused")
        finally:
            await redis.execute("DEL", redis_key)

    # An unsigned pickle (or one from another application) is refused the same way.
    try:
        serializer.loads(pickle.dumps(session))
    except SignatureError:
        pass
    else:
        raise AssertionError("unsigned data must be refused")

    # Bound to a context (the cache binds its namespace and the entry's key): the blob
    # is refused anywhere else, so copying bob's session to alice's key gains nothing.
    bound = serializer.dumps_with(session, context=b"sessions:bob")
    assert serializer.loads_with(bound, context=b"sessions:bob") == session
    try:
        serializer.loads_with(bound, context=b"sessions:alice")
    except SignatureError:
        pass
    else:
        raise AssertionError("a blob bound to bob must be refused for alice")

    # Key rotation: sign with the new key, keep accepting the old one for a while.
    rotated = PickleSerializer(secrets.token_bytes(32), old_keys=[key])
    assert rotated.loads(serializer.dumps(session)) == session


async def main() -> None:
    """Run both parts."""
    json_and_msgpack()
    await signed_pickle()


if __name__ == "__main__":
    asyncio.run(main())
