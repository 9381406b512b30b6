"""Turn values into bytes for a backend, and back.

`JsonSerializer` is the safe default. `MsgpackSerializer` is compact and keeps
`bytes`, but needs the `msgpack` extra. `PickleSerializer` handles any Python
object, so it is opt-in and signs every blob with HMAC-SHA256: stored bytes are
verified before they are unpickled, because unpickling untrusted bytes runs
arbitrary code.

Every serializer raises `SerializationError` when a value cannot be encoded or
stored bytes cannot be decoded; `PickleSerializer` raises its subclass
`SignatureError` when a signature does not verify. A `ContextSerializer`
(the signed pickle) can also bind a blob to a context, such as the key it is
stored under, so the blob is refused anywhere else.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import pickle
import struct
from typing import TYPE_CHECKING, Any, Final, NoReturn, Protocol, cast, runtime_checkable

from scalepy._extras import missing_extra
from scalepy.errors import ConfigurationError, SerializationError, SignatureError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = (
    "ContextSerializer",
    "JsonSerializer",
    "MsgpackSerializer",
    "PickleSerializer",
    "Serializer",
    "TypedSerializer",
)


class Serializer(Protocol):
    """Encodes values to bytes and decodes them back.

    Implementations must be safe to share between tasks and threads.
    """

    @property
    def name(self) -> str:
        """A short, stable name for the format, e.g. `"json"`."""
        ...

    def dumps(self, value: Any) -> bytes:
        """Encode a value.

        Args:
            value: The value to encode.

        Returns:
            The encoded bytes.

        Raises:
            SerializationError: If the value cannot be encoded in this format.
        """
        ...

    def loads(self, data: bytes) -> Any:
        """Decode bytes produced by `dumps()`.

        Args:
            data: The encoded bytes.

        Returns:
            The decoded value.

        Raises:
            SerializationError: If the bytes are not valid in this format.
        """
        ...


@runtime_checkable
class ContextSerializer(Serializer, Protocol):
    """A `Serializer` that can also bind a blob to a context, such as where it is stored.

    A blob encoded with one context is refused under any other, so stored bytes
    copied to another key decode as an error, never as a value. The cache uses
    these methods, with its namespace and the entry's key as the context,
    whenever its serializer has them.
    """

    def dumps_with(self, value: Any, *, context: bytes) -> bytes:
        """Encode a value bound to `context`.

        Raises:
            SerializationError: If the value cannot be encoded in this format.
        """
        ...

    def loads_with(self, data: bytes, *, context: bytes) -> Any:
        """Decode bytes produced by `dumps_with()` with the same `context`.

        Raises:
            SerializationError: If the bytes are not valid, or were bound to another context.
        """
        ...


@runtime_checkable
class TypedSerializer(Serializer, Protocol):
    """A `Serializer` that can specialise itself to give values back with a given type.

    The cache and the queue ask for one specialisation per function (and per task
    parameter), from its annotations, so a function returning `list[Todo]` gets a
    `list[Todo]` out of the cache. `JsonSerializer` and `MsgpackSerializer` have
    this ability (with msgspec, or Pydantic for Pydantic models).
    """

    def for_type(self, annotation: Any) -> Serializer:
        """Return a serializer of the same format whose `loads()` returns `annotation` values.

        Raises:
            ImportError: The package the specialisation needs is not installed.
            TypeError: The format cannot decode into `annotation`.
        """
        ...


class _Specialising:
    """`TypedSerializer.for_type` for the formats msgspec speaks (JSON, MessagePack)."""

    __slots__ = ()

    name: str

    def for_type(self, annotation: Any) -> Serializer:
        """Return this format, decoding into `annotation` (see `TypedSerializer`).

        Pydantic encodes and validates annotations holding its models; msgspec
        every other. A subclass overriding `dumps` or `loads` (to compress, to
        count...) is returned as it is: it chose its bytes.

        Raises:
            ImportError: msgspec (or, for a Pydantic model, Pydantic) is not installed.
            TypeError: msgspec cannot decode into `annotation`.
        """
        plain: Serializer = cast("Serializer", self)
        mro = type(self).__mro__
        subclasses = mro[: next(i for i, cls in enumerate(mro) if _Specialising in cls.__bases__)]
        if any("dumps" in vars(cls) or "loads" in vars(cls) for cls in subclasses):
            return plain
        # Imported here: each module imports its optional dependency, and only when asked.
        from scalepy._annotations import involves_pydantic

        if involves_pydantic(annotation):
            from scalepy._pydantic import PydanticSerializer

            if self.name == "json":  # Pydantic writes and parses JSON itself, in one step
                return PydanticSerializer(annotation, "json")
            return PydanticSerializer(annotation, self.name, dumps=plain.dumps, loads=plain.loads)
        from scalepy._msgspec import MsgspecSerializer

        return MsgspecSerializer(annotation, self.name)


def _reject_constant(constant: str) -> NoReturn:
    raise ValueError(f"{constant} is not valid JSON")


def _reason(exc: BaseException) -> str:
    # Some decoders (msgpack's FormatError) raise without a message.
    return str(exc) or type(exc).__name__


class JsonSerializer(_Specialising):
    """Strict, compact JSON in UTF-8.

    Encodes what the `json` module encodes, so tuples come back as lists and
    non-string dict keys come back as strings. NaN and infinities are rejected in
    both directions, as standard JSON has no spelling for them.
    """

    __slots__ = ("_decode", "_encode")

    name: Final = "json"

    def __init__(self) -> None:
        # Built once: json.dumps() with non-default options builds an encoder per call.
        self._encode = json.JSONEncoder(
            ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode
        self._decode = json.JSONDecoder(parse_constant=_reject_constant).decode

    def dumps(self, value: Any) -> bytes:
        """Encode a value as JSON.

        Args:
            value: None, bool, int, finite float, str, or lists and dicts of them.

        Returns:
            UTF-8 encoded JSON without insignificant whitespace.

        Raises:
            SerializationError: If the value holds an unsupported type, NaN or an
                infinity, a circular reference, or a string with lone surrogates.
        """
        try:
            return self._encode(value).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            raise SerializationError(
                f"cannot encode {type(value).__name__} as JSON: {_reason(exc)}"
            ) from exc

    def loads(self, data: bytes) -> Any:
        """Decode UTF-8 encoded JSON.

        Args:
            data: Bytes produced by `dumps()`.

        Returns:
            The decoded value.

        Raises:
            SerializationError: If the bytes are not UTF-8 or not valid JSON.
        """
        try:
            return self._decode(data.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise SerializationError(f"cannot decode JSON: {_reason(exc)}") from exc

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MsgpackSerializer(_Specialising):
    """MessagePack via the optional `msgpack` package.

    More compact than JSON and keeps `bytes` apart from `str`. Tuples come back
    as lists.

    Raises:
        ImportError: If `msgpack` is not installed.
    """

    __slots__ = ("_errors", "_packb", "_unpackb")

    name: Final = "msgpack"

    def __init__(self) -> None:
        try:
            msgpack = importlib.import_module("msgpack")
        except ImportError as exc:
            raise missing_extra("MsgpackSerializer", "msgpack") from exc
        self._packb: Callable[..., bytes] = msgpack.packb
        self._unpackb: Callable[..., Any] = msgpack.unpackb
        self._errors: tuple[type[Exception], ...] = (
            TypeError,
            ValueError,
            OverflowError,
            msgpack.UnpackException,
        )

    def dumps(self, value: Any) -> bytes:
        """Encode a value as MessagePack.

        Args:
            value: None, bool, int (64-bit), float, str, bytes, or lists and dicts of them.

        Returns:
            The packed bytes; `bytes` values use the bin type.

        Raises:
            SerializationError: If the value holds an unsupported type, an integer
                outside 64 bits, or is nested too deeply (including cycles).
        """
        try:
            return self._packb(value, use_bin_type=True)
        except self._errors as exc:
            raise SerializationError(
                f"cannot encode {type(value).__name__} as MessagePack: {_reason(exc)}"
            ) from exc

    def loads(self, data: bytes) -> Any:
        """Decode MessagePack.

        Args:
            data: Bytes produced by `dumps()`.

        Returns:
            The decoded value; strings are decoded as UTF-8, and map keys may be
            any hashable type.

        Raises:
            SerializationError: If the bytes are not exactly one valid MessagePack value.
        """
        try:
            return self._unpackb(data, raw=False, strict_map_key=False)
        except self._errors as exc:
            raise SerializationError(f"cannot decode MessagePack: {_reason(exc)}") from exc

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


_MAGIC: Final = b"SPK\x01"  # scalepy signed pickle, format 1: bound to no context
_BOUND_MAGIC: Final = b"SPK\x02"  # format 2: bound to a context
_CONTEXT_LENGTH: Final = struct.Struct(">I")
_MAC_SIZE: Final = hashlib.sha256().digest_size
_HEADER_SIZE: Final = len(_MAGIC) + _MAC_SIZE
_MIN_KEY_BYTES: Final = 16


def _key_bytes(key: bytes | str, what: str) -> bytes:
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if not raw:
        raise ConfigurationError(f"{what} must not be empty")
    if len(raw) < _MIN_KEY_BYTES:
        raise ConfigurationError(
            f"{what} must be at least {_MIN_KEY_BYTES} bytes to resist guessing, got "
            f"{len(raw)}; generate one with secrets.token_bytes(32)"
        )
    return raw


def _pickle(value: Any) -> bytes:
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # __reduce__ may run arbitrary code and raise anything
        raise SerializationError(f"cannot pickle {type(value).__name__}: {_reason(exc)}") from exc


def _signed(base: hmac.HMAC, magic: bytes, prefix: bytes, value: Any) -> bytes:
    payload = _pickle(value)
    mac = base.copy()
    mac.update(prefix)
    mac.update(payload)
    return b"".join((magic, mac.digest(), payload))


def _bound(context: bytes) -> bytes:
    # Length-prefixed, so no context is a prefix of another context plus payload.
    return _CONTEXT_LENGTH.pack(len(context)) + context


class PickleSerializer:
    """Pickle, signed with HMAC-SHA256 so only blobs this application wrote are unpickled.

    Unpickling runs arbitrary code, so `loads()` checks the signature before
    unpickling anything. A blob is `magic/format (4 bytes) + HMAC (32 bytes) +
    pickle`. `dumps()` writes format 1, whose HMAC covers the magic and the
    pickle; `dumps_with(value, context=...)` writes format 2, whose HMAC also
    covers the context (length-prefixed), so the blob is refused under any other
    context: the cache passes its namespace and the entry's key, and a blob copied
    to another key or namespace does not decode there.

    To rotate keys, sign with the new `key` and keep the previous ones in
    `old_keys` until every blob signed with them has expired.

    Args:
        key: The signing key, at least 16 bytes (a `str` is encoded as UTF-8).
        old_keys: Earlier keys still accepted by `loads()`, never used to sign.

    Raises:
        ConfigurationError: If a key is empty or shorter than 16 bytes.
    """

    __slots__ = ("_bound_macs", "_macs")

    name: Final = "pickle"

    def __init__(self, key: bytes | str, *, old_keys: Sequence[bytes | str] = ()) -> None:
        keys = [_key_bytes(key, "key")]
        keys.extend(_key_bytes(old, f"old_keys[{i}]") for i, old in enumerate(old_keys))
        # Keyed and primed with the magic once; copy() per call skips the key setup.
        self._macs = tuple(hmac.new(k, _MAGIC, hashlib.sha256) for k in keys)
        self._bound_macs = tuple(hmac.new(k, _BOUND_MAGIC, hashlib.sha256) for k in keys)

    def dumps(self, value: Any) -> bytes:
        """Pickle a value and sign it with the current key, bound to no context.

        Args:
            value: Any picklable value.

        Returns:
            The signed blob (format 1).

        Raises:
            SerializationError: If the value cannot be pickled.
        """
        return _signed(self._macs[0], _MAGIC, b"", value)

    def dumps_with(self, value: Any, *, context: bytes) -> bytes:
        """Pickle a value and sign it, with `context`, with the current key.

        Args:
            value: Any picklable value.
            context: Where the blob belongs, e.g. the namespace and key it is
                stored under; `loads_with()` accepts it only with the same context.

        Returns:
            The signed blob (format 2).

        Raises:
            SerializationError: If the value cannot be pickled.
        """
        return _signed(self._bound_macs[0], _BOUND_MAGIC, _bound(context), value)

    def loads(self, data: bytes) -> Any:
        """Verify a blob bound to no context (`loads_with(data, context=b"")`) and unpickle it.

        Args:
            data: Bytes produced by `dumps()`.

        Returns:
            The unpickled value.

        Raises:
            SerializationError: As `loads_with()` raises it: `SignatureError` unless
                the blob was signed, unaltered, by a known key, for no context.
        """
        return self.loads_with(data, context=b"")

    def loads_with(self, data: bytes, *, context: bytes) -> Any:
        """Verify a signed blob for `context` with the current key, then the old keys; unpickle it.

        Args:
            data: Bytes produced by `dumps_with()` with this context, or by
                `dumps()` when `context` is empty.
            context: The context the blob must have been signed for.

        Returns:
            The unpickled value.

        Raises:
            SignatureError: If the blob is not a signed pickle, is truncated, was
                signed with an unknown key or for another context, or was altered.
            SerializationError: If the signature verifies but unpickling fails,
                e.g. because a pickled class no longer exists.
        """
        magic = data[: len(_MAGIC)]
        if magic == _BOUND_MAGIC:
            macs, prefix = self._bound_macs, _bound(context)
            failure = "unknown key, tampered data or another context"
        elif magic == _MAGIC:
            if context:
                raise SignatureError("signed pickle rejected: signed for another context (none)")
            macs, prefix, failure = self._macs, b"", "unknown key or tampered data"
        else:
            raise SignatureError("not a signed scalepy pickle: the magic prefix is missing")
        if len(data) <= _HEADER_SIZE:
            raise SignatureError("signed pickle is truncated")
        signature = data[len(_MAGIC) : _HEADER_SIZE]
        payload = memoryview(data)[_HEADER_SIZE:]
        for base in macs:
            mac = base.copy()
            mac.update(prefix)
            mac.update(payload)
            if hmac.compare_digest(signature, mac.digest()):
                break
        else:
            raise SignatureError(f"signed pickle rejected: {failure}")
        try:
            return pickle.loads(payload)
        except Exception as exc:  # a verified pickle can still fail in __setstate__ & co.
            raise SerializationError(f"cannot unpickle verified data: {_reason(exc)}") from exc

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key=<hidden>, old_keys={len(self._macs) - 1})"
