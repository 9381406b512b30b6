"""Values typed by an annotation holding Pydantic models: the only module importing Pydantic.

msgspec does not know Pydantic models, so an annotation holding one is encoded
and validated by Pydantic itself, as the model defines (aliases, custom
serializers, validators). JSON goes through Pydantic's own JSON in one step;
another format goes through Pydantic's JSON-compatible Python form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scalepy.errors import SerializationError

try:
    from pydantic import TypeAdapter
    from pydantic_core import PydanticSerializationError
except ImportError as exc:  # pragma: no cover - a Pydantic model was found: it is installed
    raise ImportError("Pydantic models need pydantic: pip install pydantic") from exc

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ("PydanticSerializer",)

_ERRORS = (ValueError, TypeError, PydanticSerializationError)  # ValidationError is a ValueError


class PydanticSerializer:
    """A format whose `loads()` validates into an annotation holding Pydantic models.

    Args:
        annotation: The type values are decoded into.
        name: The format's name.
        dumps: The format's encoder of Pydantic's JSON-compatible Python form;
            `None` for JSON, which Pydantic writes itself.
        loads: The format's decoder, paired with `dumps`.
    """

    __slots__ = ("_adapter", "_dumps", "_loads", "name")

    def __init__(
        self,
        annotation: Any,
        name: str,
        *,
        dumps: Callable[[Any], bytes] | None = None,
        loads: Callable[[bytes], Any] | None = None,
    ) -> None:
        self._adapter: TypeAdapter[Any] = TypeAdapter(annotation)
        self._dumps = dumps
        self._loads = loads
        self.name = name

    def dumps(self, value: Any) -> bytes:
        """Encode `value` as its Pydantic type dumps it.

        Raises:
            SerializationError: Pydantic (or the format) cannot encode it.
        """
        try:
            if self._dumps is None:
                return self._adapter.dump_json(value, warnings=False)
            return self._dumps(self._adapter.dump_python(value, mode="json", warnings=False))
        except _ERRORS as exc:
            raise SerializationError(
                f"cannot encode {type(value).__name__} as {self.name}: {exc}"
            ) from exc

    def loads(self, data: bytes) -> Any:
        """Decode and validate `data`.

        Raises:
            SerializationError: The bytes are not valid, or do not validate.
        """
        try:
            if self._loads is None:
                return self._adapter.validate_json(data)
            return self._adapter.validate_python(self._loads(data))
        except _ERRORS as exc:
            raise SerializationError(f"cannot decode {self.name}: {exc}") from exc

    def __repr__(self) -> str:
        return f"<PydanticSerializer {self.name} {self._adapter}>"
