"""Tests for `scalepy.serializers`: round trips, error mapping and pickle signing."""

from __future__ import annotations

import dataclasses
import math
import pickle
import sys
from typing import Any, NoReturn

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scalepy.errors import ConfigurationError, SerializationError, SignatureError
from scalepy.serializers import (
    ContextSerializer,
    JsonSerializer,
    MsgpackSerializer,
    PickleSerializer,
    Serializer,
)

KEY = b"k" * 32
OTHER_KEY = b"o" * 32

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=25,
)

msgpack_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
msgpack_values = st.recursive(
    st.none() | st.booleans() | msgpack_ints | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda children: (
        st.lists(children) | st.dictionaries(st.text() | st.binary() | msgpack_ints, children)
    ),
    max_leaves=25,
)

hashables = st.none() | st.booleans() | st.integers() | st.text() | st.binary()
pickle_values = st.recursive(
    hashables | st.floats(allow_nan=False) | st.sets(hashables) | st.frozensets(hashables),
    lambda children: (
        st.lists(children) | st.tuples(children, children) | st.dictionaries(hashables, children)
    ),
    max_leaves=25,
)


@dataclasses.dataclass(frozen=True)
class Point:
    """A user-defined class, to show pickle keeps the type."""

    x: int
    y: int


def _explode() -> NoReturn:
    raise RuntimeError("boom on load")


class ExplodesOnLoad:
    """Pickles fine, but unpickling it raises."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_explode, ())


def _circular_list() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


def test_serializers_satisfy_the_protocol_with_distinct_names() -> None:
    """Every serializer is a Serializer and names its format."""
    implementations: list[Serializer] = [
        JsonSerializer(),
        MsgpackSerializer(),
        PickleSerializer(KEY),
    ]
    assert ["json", "msgpack", "pickle"] == [s.name for s in implementations]


@pytest.mark.parametrize("cls", [JsonSerializer, MsgpackSerializer, PickleSerializer])
def test_serializers_are_slotted(cls: type[Any]) -> None:
    """Serializer instances have no __dict__."""
    instance = cls(KEY) if cls is PickleSerializer else cls()
    assert not hasattr(instance, "__dict__")


# JSON


@given(value=json_values)
def test_json_round_trips(value: Any) -> None:
    """JSON-representable values survive dumps() then loads()."""
    serializer = JsonSerializer()
    assert value == serializer.loads(serializer.dumps(value))


def test_json_is_compact_utf8() -> None:
    """JsonSerializer writes no insignificant whitespace and non-ASCII text as UTF-8."""
    assert '{"a":[1,2],"é":"ü"}'.encode() == JsonSerializer().dumps({"a": [1, 2], "é": "ü"})


def test_json_has_a_repr() -> None:
    """repr(JsonSerializer()) is its constructor call."""
    assert "JsonSerializer()" == repr(JsonSerializer())


@pytest.mark.parametrize(
    ("value", "cause", "message"),
    [
        (object(), TypeError, "not JSON serializable"),
        ({"a": {1, 2}}, TypeError, "set is not JSON serializable"),
        (math.nan, ValueError, "Out of range float"),
        ([math.inf], ValueError, "Out of range float"),
        (_circular_list(), ValueError, "Circular reference"),
        ("\ud800", UnicodeEncodeError, "surrogates not allowed"),
    ],
)
def test_json_dumps_errors_are_serialization_errors(
    value: Any, cause: type[Exception], message: str
) -> None:
    """Values JSON cannot encode raise SerializationError chained from the original error."""
    with pytest.raises(SerializationError, match=message) as info:
        JsonSerializer().dumps(value)
    assert isinstance(info.value.__cause__, cause)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff", "can't decode byte"),
        (b"", "Expecting value"),
        (b"{", "Expecting property name"),
        (b"[1] 2", "Extra data"),
        (b"NaN", "NaN is not valid JSON"),
        (b"[-Infinity]", "-Infinity is not valid JSON"),
        (b"[" * 100_000, "recursion"),
    ],
)
def test_json_loads_errors_are_serialization_errors(data: bytes, message: str) -> None:
    """Bytes that are not UTF-8 or not strict JSON raise SerializationError."""
    with pytest.raises(SerializationError, match=message) as info:
        JsonSerializer().loads(data)
    assert info.value.__cause__ is not None


# MessagePack


@given(value=msgpack_values)
def test_msgpack_round_trips(value: Any) -> None:
    """MessagePack-representable values, bytes and non-str keys included, survive a round trip."""
    serializer = MsgpackSerializer()
    assert value == serializer.loads(serializer.dumps(value))


def test_msgpack_keeps_bytes_and_str_apart() -> None:
    """Bytes come back as bytes, and str as str."""
    serializer = MsgpackSerializer()
    assert [b"x", "x"] == serializer.loads(serializer.dumps([b"x", "x"]))
    assert bytes is type(serializer.loads(serializer.dumps(b"x")))


def test_msgpack_has_a_repr() -> None:
    """repr(MsgpackSerializer()) is its constructor call."""
    assert "MsgpackSerializer()" == repr(MsgpackSerializer())


def test_msgpack_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without msgpack installed, MsgpackSerializer() raises ImportError naming the extra."""
    monkeypatch.setitem(sys.modules, "msgpack", None)
    with pytest.raises(ImportError, match=r"pip install 'scalepy-toolkit\[msgpack\]'") as info:
        MsgpackSerializer()
    assert isinstance(info.value.__cause__, ImportError)


@pytest.mark.parametrize(
    ("value", "cause"),
    [
        (object(), TypeError),
        ({1, 2}, TypeError),
        (2**64, OverflowError),
        (-(2**63) - 1, OverflowError),
        (_circular_list(), ValueError),
    ],
)
def test_msgpack_dumps_errors_are_serialization_errors(value: Any, cause: type[Exception]) -> None:
    """Values MessagePack cannot encode raise SerializationError chained from the original."""
    with pytest.raises(SerializationError, match="cannot encode") as info:
        MsgpackSerializer().dumps(value)
    assert isinstance(info.value.__cause__, cause)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "incomplete input"),
        (b"\xc1", "FormatError"),
        (b"\x92\x01", "incomplete input"),
        (b"\x01\x02", "extra data"),
        (b"\xa2\xff\xfe", "can't decode byte"),
        (b"\x81\x91\x01\x02", "unhashable"),
    ],
)
def test_msgpack_loads_garbage_is_a_serialization_error(data: bytes, message: str) -> None:
    """Bytes that are not exactly one valid MessagePack value raise SerializationError."""
    with pytest.raises(SerializationError, match=message):
        MsgpackSerializer().loads(data)


# Pickle


@given(value=pickle_values)
def test_pickle_round_trips(value: Any) -> None:
    """Picklable values, tuples, sets and bytes included, survive a signed round trip."""
    serializer = PickleSerializer(KEY)
    assert value == serializer.loads(serializer.dumps(value))


def test_pickle_keeps_user_types() -> None:
    """Instances of user classes come back as the same type."""
    serializer = PickleSerializer(KEY)
    assert Point(1, 2) == serializer.loads(serializer.dumps(Point(1, 2)))


def test_pickle_envelope_is_magic_mac_and_highest_protocol_pickle() -> None:
    """A blob is a 4-byte magic, a 32-byte HMAC and the pickle at the highest protocol."""
    payload = pickle.dumps({"a": 1}, protocol=pickle.HIGHEST_PROTOCOL)
    blob = PickleSerializer(KEY).dumps({"a": 1})
    assert 4 + 32 + len(payload) == len(blob)
    assert blob.endswith(payload)


def test_pickle_dumps_error_is_a_serialization_error() -> None:
    """Values pickle cannot handle raise SerializationError chained from the original."""
    with pytest.raises(SerializationError, match="cannot pickle function") as info:
        PickleSerializer(KEY).dumps(lambda: None)
    assert info.value.__cause__ is not None


def test_pickle_loads_failure_after_verification_is_not_a_signature_error() -> None:
    """A verified blob that fails to unpickle raises a plain SerializationError."""
    serializer = PickleSerializer(KEY)
    blob = serializer.dumps(ExplodesOnLoad())
    with pytest.raises(SerializationError, match="boom on load") as info:
        serializer.loads(blob)
    assert not isinstance(info.value, SignatureError)


@given(data=st.data(), value=pickle_values)
def test_pickle_rejects_any_single_byte_change(data: st.DataObject, value: Any) -> None:
    """Changing any one byte of a signed blob makes loads() raise SignatureError."""
    serializer = PickleSerializer(KEY)
    blob = bytearray(serializer.dumps(value))
    index = data.draw(st.integers(min_value=0, max_value=len(blob) - 1), label="index")
    blob[index] ^= data.draw(st.integers(min_value=1, max_value=255), label="xor")
    with pytest.raises(SignatureError):
        serializer.loads(bytes(blob))


@given(data=st.data())
def test_pickle_rejects_truncated_blobs(data: st.DataObject) -> None:
    """Every proper prefix of a signed blob is rejected with SignatureError."""
    serializer = PickleSerializer(KEY)
    blob = serializer.dumps({"key": ["value", 1, 2.0]})
    length = data.draw(st.integers(min_value=0, max_value=len(blob) - 1), label="length")
    with pytest.raises(SignatureError):
        serializer.loads(blob[:length])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "magic prefix is missing"),
        (pickle.dumps({"a": 1}), "magic prefix is missing"),
        (pickle.dumps({"a": 1}, protocol=pickle.HIGHEST_PROTOCOL), "magic prefix is missing"),
        (b"SPK\x01", "truncated"),
        (b"SPK\x01" + b"\x00" * 32, "truncated"),
        (b"SPK\x01" + b"\x00" * 32 + pickle.dumps(1), "unknown key or tampered"),
    ],
)
def test_pickle_rejects_unsigned_data(data: bytes, message: str) -> None:
    """Raw pickles, bare headers and forged signatures are rejected before unpickling."""
    with pytest.raises(SignatureError, match=message):
        PickleSerializer(KEY).loads(data)


def test_pickle_rejects_appended_bytes() -> None:
    """Bytes appended to a signed blob invalidate its signature."""
    serializer = PickleSerializer(KEY)
    with pytest.raises(SignatureError):
        serializer.loads(serializer.dumps([1, 2]) + b".")


def test_pickle_rejects_data_signed_with_another_key() -> None:
    """A blob signed with a key the serializer does not know is rejected."""
    blob = PickleSerializer(OTHER_KEY).dumps("secret")
    with pytest.raises(SignatureError, match="unknown key"):
        PickleSerializer(KEY).loads(blob)


def test_pickle_key_rotation_accepts_old_keys_and_signs_with_the_new_one() -> None:
    """old_keys verify blobs signed before rotation; new blobs use only the current key."""
    old = PickleSerializer(OTHER_KEY)
    rotated = PickleSerializer(KEY, old_keys=[b"x" * 16, OTHER_KEY])
    assert {"v": 1} == rotated.loads(old.dumps({"v": 1}))

    blob = rotated.dumps({"v": 2})
    assert {"v": 2} == PickleSerializer(KEY).loads(blob)
    with pytest.raises(SignatureError):
        old.loads(blob)


def test_pickle_str_key_is_its_utf8_bytes() -> None:
    """A str key signs exactly like its UTF-8 encoding."""
    blob = PickleSerializer("k" * 32).dumps(42)
    assert 42 == PickleSerializer(b"k" * 32).loads(blob)


def test_pickle_accepts_a_16_byte_key() -> None:
    """Sixteen bytes is the shortest accepted key."""
    serializer = PickleSerializer(b"k" * 16)
    assert 1 == serializer.loads(serializer.dumps(1))


@pytest.mark.parametrize(
    ("key", "old_keys", "message"),
    [
        (b"", (), "key must not be empty"),
        ("", (), "key must not be empty"),
        (b"k" * 15, (), "key must be at least 16 bytes .* got 15"),
        ("short", (), "key must be at least 16 bytes .* got 5"),
        (KEY, ("",), r"old_keys\[0\] must not be empty"),
        (KEY, (KEY, b"k" * 8), r"old_keys\[1\] must be at least 16 bytes"),
    ],
)
def test_pickle_rejects_empty_or_short_keys(
    key: bytes | str, old_keys: tuple[bytes | str, ...], message: str
) -> None:
    """Empty keys and keys under 16 bytes raise ConfigurationError saying why."""
    with pytest.raises(ConfigurationError, match=message):
        PickleSerializer(key, old_keys=old_keys)


def test_pickle_repr_does_not_leak_keys() -> None:
    """repr(PickleSerializer) shows how many old keys it holds, never a key."""
    key = "correct horse battery staple"
    old_key = b"tr0ub4dor&3-tr0ub4dor&3"
    text = repr(PickleSerializer(key, old_keys=[old_key]))
    assert "PickleSerializer(key=<hidden>, old_keys=1)" == text
    assert key not in text
    assert repr(old_key) not in text


# Pickle bound to a context


def test_pickle_bound_to_a_context_loads_only_under_that_context() -> None:
    """A blob dumped with a context is refused under any other context, or none."""
    serializer = PickleSerializer(KEY)
    blob = serializer.dumps_with({"role": "admin"}, context=b"ns/user:2")
    assert {"role": "admin"} == serializer.loads_with(blob, context=b"ns/user:2")
    for other in (b"ns/user:1", b"other/user:2", b""):
        with pytest.raises(SignatureError, match="another context"):
            serializer.loads_with(blob, context=other)
    with pytest.raises(SignatureError):
        serializer.loads(blob)


def test_pickle_without_a_context_is_refused_under_one() -> None:
    """A blob from dumps() (format 1, no context) loads only where no context is expected."""
    serializer = PickleSerializer(KEY)
    blob = serializer.dumps([1, 2])
    assert [1, 2] == serializer.loads_with(blob, context=b"")
    with pytest.raises(SignatureError, match="another context"):
        serializer.loads_with(blob, context=b"ns/k")


@given(first=st.binary(max_size=40), second=st.binary(max_size=40), value=pickle_values)
def test_pickle_contexts_never_verify_each_other(first: bytes, second: bytes, value: Any) -> None:
    """Two different contexts never accept each other's blobs, whatever their bytes."""
    serializer = PickleSerializer(KEY)
    blob = serializer.dumps_with(value, context=first)
    if first == second:
        assert value == serializer.loads_with(blob, context=second)
    else:
        with pytest.raises(SignatureError):
            serializer.loads_with(blob, context=second)


def test_pickle_is_a_context_serializer_and_the_others_are_not() -> None:
    """Only the signed pickle binds a context; the cache checks this ability by protocol."""
    assert isinstance(PickleSerializer(KEY), ContextSerializer)
    assert not isinstance(JsonSerializer(), ContextSerializer)
    assert not isinstance(MsgpackSerializer(), ContextSerializer)
