"""Typed JSON and MessagePack with msgspec: the only module importing it.

An encoder and a decoder bound to one annotation are built once, when a
function is decorated: msgspec then validates while it parses, with no
intermediate dicts, which `benchmarks/codec.py` measures several times faster
than the standard library plus a conversion step, and than Pydantic's
`TypeAdapter`.
"""

from __future__ import annotations

from typing import Any, Final

from scalepy._extras import missing_extra
from scalepy.errors import SerializationError

try:
    import msgspec
except ImportError as exc:  # the redis and all extras include it
    raise missing_extra("values typed by annotation", "msgspec") from exc

__all__ = ("Envelope", "MsgspecSerializer")

_ENCODE_ERRORS: Final = (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError)


def _encode_other(value: Any) -> Any:
    # A Pydantic model where the annotation said Any: as Pydantic writes it in JSON.
    dump = getattr(value, "model_dump", None)
    if dump is None:
        raise TypeError(f"msgspec cannot encode {type(value).__name__}")
    return dump(mode="json")


class MsgspecSerializer:
    """JSON or MessagePack whose `loads()` returns values of one annotation.

    Args:
        annotation: The type values are decoded into: builtins, `datetime`,
            `UUID`, `Decimal`, enums, dataclasses, `TypedDict`, `NamedTuple`,
            msgspec Structs, and unions or collections of them.
        name: `"json"` or `"msgpack"`.

    Raises:
        TypeError: msgspec cannot decode into `annotation`.
    """

    __slots__ = ("_decode", "_encode", "annotation", "name")

    def __init__(self, annotation: Any, name: str) -> None:
        module: Any = msgspec.json if name == "json" else msgspec.msgpack
        self.annotation = annotation
        self.name = name
        self._encode = module.Encoder(enc_hook=_encode_other).encode
        self._decode = module.Decoder(annotation).decode

    def dumps(self, value: Any) -> bytes:
        """Encode `value`.

        Raises:
            SerializationError: msgspec cannot encode it.
        """
        try:
            encoded: bytes = self._encode(value)
        except _ENCODE_ERRORS as exc:
            raise SerializationError(
                f"cannot encode {type(value).__name__} as {self.name}: {exc}"
            ) from exc
        return encoded

    def loads(self, data: bytes) -> Any:
        """Decode `data` into the annotation.

        Raises:
            SerializationError: The bytes are not valid, or do not match the
                annotation (e.g. written when the type was another).
        """
        try:
            return self._decode(data)
        except msgspec.DecodeError as exc:  # ValidationError included
            raise SerializationError(f"cannot decode {self.name}: {exc}") from exc

    def __repr__(self) -> str:
        return f"<MsgspecSerializer {self.name} {self.annotation!r}>"


class Envelope:
    """`[args, kwargs]` in one document, each argument already encoded by its own serializer.

    The arguments are embedded as they are (msgspec's `Raw`), so the document is
    what encoding `[args, kwargs]` at once would give, and a job enqueued by a
    process without types decodes in one with them, and back.

    Args:
        name: `"json"` or `"msgpack"`, the format of every argument.
    """

    __slots__ = ("_decode", "_encode", "name")

    def __init__(self, name: str) -> None:
        module: Any = msgspec.json if name == "json" else msgspec.msgpack
        self.name = name
        self._encode = module.Encoder().encode
        self._decode = module.Decoder(tuple[list[msgspec.Raw], dict[str, msgspec.Raw]]).decode

    def pack(self, args: list[bytes], kwargs: dict[str, bytes]) -> bytes:
        """Return the document holding these encoded arguments."""
        encoded: bytes = self._encode(
            ([msgspec.Raw(arg) for arg in args], {k: msgspec.Raw(v) for k, v in kwargs.items()})
        )
        return encoded

    def unpack(self, data: bytes) -> tuple[list[bytes], dict[str, bytes]]:
        """Return the encoded arguments the document holds.

        Raises:
            SerializationError: `data` is not `[args, kwargs]` in this format.
        """
        try:
            args, kwargs = self._decode(data)
        except msgspec.DecodeError as exc:
            raise SerializationError(f"cannot decode job arguments as {self.name}: {exc}") from exc
        return [bytes(arg) for arg in args], {key: bytes(value) for key, value in kwargs.items()}
