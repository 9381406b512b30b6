"""The bytes of one stored cache entry: a small versioned header, then the serialized value.

```
offset  size  field
0       1     format version (2)
1       1     flags: bit 0 = the value is None (no payload follows)
2       4     stale window, ms: how long the entry outlives its freshness
6       4     load time, ms: how long the value took to compute (XFetch)
10      2     number of tags, n
12      ...   n x (u16 name length, UTF-8 name, u64 tag version at write)
...     ...   the serializer's payload
```

The header is what lets every replica judge an entry from the entry alone and its
remaining time to live: fresh while more than the stale window remains. A cached
`None` is a flag, so it needs no serializer support and stays distinct from a
miss. Bytes that do not parse raise `ValueError`, which the cache counts as a miss.

Format 2 replaced format 1 when templated keys started delimiting their fields
(`_template.py`) and signed pickles started binding their key (`_codec.py`): an
entry of format 1 may sit under a key that now means other arguments, so it is
refused like any foreign entry and read as a miss.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from scalepy.cache._policy import Verdict

__all__ = ("Entry", "Found", "decode_entry", "encode_entry")

FORMAT = 2
_NONE = 0x01
_HEADER = struct.Struct(">BBIIH")
_TAG_LENGTH = struct.Struct(">H")
_TAG_VERSION = struct.Struct(">Q")
_MAX_MS = 2**32 - 1


class Entry(NamedTuple):
    """One decoded entry; `payload` is still serialized (a tuple: built on every hit)."""

    payload: bytes
    """The serializer's bytes; empty when `is_none`."""
    is_none: bool
    """Whether the cached value is `None`."""
    stale_window: float
    """Seconds between the end of freshness and the hard expiry."""
    load_time: float
    """Seconds the value took to compute."""
    tags: tuple[tuple[str, int], ...]
    """(tag, version of the tag when the value was computed)."""


class Found(NamedTuple):
    """A usable entry read from the backend: its decoded value and how fresh it is."""

    value: Any
    entry: Entry
    remaining: float
    verdict: Verdict


def _ms(seconds: float) -> int:
    return min(max(round(seconds * 1000), 0), _MAX_MS)


def encode_entry(
    payload: bytes,
    *,
    is_none: bool,
    stale_window: float,
    load_time: float,
    tags: tuple[tuple[str, int], ...] = (),
) -> bytes:
    """Return the stored bytes of an entry (see the module docstring for the layout).

    Args:
        payload: The serialized value (ignored when `is_none`).
        is_none: The value is `None`.
        stale_window: Seconds the entry outlives its freshness.
        load_time: Seconds the value took to compute.
        tags: (tag, version) pairs read before the value was computed.
    """
    flags = _NONE if is_none else 0
    parts = [_HEADER.pack(FORMAT, flags, _ms(stale_window), _ms(load_time), len(tags))]
    for tag, version in tags:
        name = tag.encode()
        parts += (_TAG_LENGTH.pack(len(name)), name, _TAG_VERSION.pack(version))
    if not is_none:
        parts.append(payload)
    return b"".join(parts)


def decode_entry(data: bytes) -> Entry:
    """Parse stored bytes back into an `Entry`.

    Raises:
        ValueError: Not an entry of a known format (truncated, foreign or newer).
    """
    try:
        version, flags, stale_ms, load_ms, count = _HEADER.unpack_from(data)
        if version != FORMAT:
            raise ValueError(f"unknown cache entry format {version}")
        if not count and not flags:  # the common entry: a value without tags
            return Entry(data[_HEADER.size :], False, stale_ms / 1000, load_ms / 1000, ())
        offset = _HEADER.size
        tags: list[tuple[str, int]] = []
        for _ in range(count):
            (length,) = _TAG_LENGTH.unpack_from(data, offset)
            offset += _TAG_LENGTH.size
            name = data[offset : offset + length].decode()
            offset += length
            (tag_version,) = _TAG_VERSION.unpack_from(data, offset)
            offset += _TAG_VERSION.size
            tags.append((name, tag_version))
    except struct.error as exc:
        raise ValueError(f"truncated cache entry: {exc}") from None
    is_none = bool(flags & _NONE)
    if is_none and offset != len(data):
        raise ValueError("a cached None carries no payload")
    return Entry(
        payload=data[offset:],
        is_none=is_none,
        stale_window=stale_ms / 1000,
        load_time=load_ms / 1000,
        tags=tuple(tags),
    )
