"""RESP3 replies in RESP2's shapes: the connection speaks RESP3, callers see RESP2.

The connection says `HELLO 3` so that pub/sub messages can share it with commands
(see `_pubsub.py`), but `RedisClient.execute` keeps returning what RESP2 returns.
RESP3 adds types RESP2 spells otherwise, and hiredis parses them as:

* a map (HGETALL, CONFIG GET, HELLO) -> `dict`; RESP2 sends a flat array of key, value;
* a double (ZSCORE, ZINCRBY) -> `float`; RESP2 sends a bulk string (`%.17g`, as Redis 7.0);
* the score pairs of a sorted-set command (ZRANGE ... WITHSCORES, ZPOPMIN with a
  count, ZRANDMEMBER ... WITHSCORES) -> `[[member, float], ...]`; RESP2 flattens the
  pairs (but not ZMPOP's, nor a GEO command's, which it nests too);
* a boolean (a Lua `true`/`false`) -> `bool`; RESP2 sends 1 and a nil;
* a set, a verbatim string, a big number -> `list`, `bytes`, `bytes`: already RESP2's.

Most replies (`bytes`, `int`, `None`, arrays of them: `PLAIN` types) need nothing:
the connection checks that before calling `as_resp2`.
"""

from __future__ import annotations

from typing import Any

from scalepy.backends.redis._command import leading_arguments

__all__ = ("PLAIN", "as_resp2")

PLAIN = frozenset({bytes, int, type(None)})
"""The reply types RESP2 and RESP3 spell alike."""


def as_resp2(reply: Any, wire: bytes) -> Any:
    """Return `reply`, parsed from RESP3, as RESP2 would have sent it (see the module).

    Args:
        reply: What hiredis parsed.
        wire: The command `reply` answers (it tells a sorted set's score pairs).
    """
    kind = type(reply)
    if kind is list:
        for item in reply:
            if type(item) not in PLAIN:
                return _array(reply, wire)
        return reply
    if kind is dict:
        return [as_resp2(part, wire) for pair in reply.items() for part in pair]
    if kind is float:
        return b"%.17g" % reply
    if kind is bool:
        return 1 if reply else None
    return reply


def _array(items: list[Any], wire: bytes) -> list[Any]:
    converted: list[Any] = []
    pairs: bool | None = None  # whether nested [member, score] pairs are flattened
    for item in items:
        if type(item) is list and len(item) == 2 and type(item[1]) is float:
            if pairs is None:
                name = leading_arguments(wire, 1)[0].upper()
                pairs = name.startswith(b"Z") and not name.endswith(b"MPOP")
            if pairs:
                converted += (as_resp2(item[0], wire), as_resp2(item[1], wire))
                continue
        converted.append(as_resp2(item, wire))
    return converted
