"""How one task's arguments and result become bytes and back, typed by its annotations.

Each argument is encoded and decoded by the serializer of its parameter's
annotation, and the result by that of the return annotation (see
`scalepy._typed`), so a worker calls the function with the types it declares
and `await job.result()` returns the type it returns. A task without typed
parameters encodes `[args, kwargs]` with the queue's serializer, as before; with
them, the arguments are encoded one by one and embedded in the same
`[args, kwargs]` document, so both spell a job alike.

A typed argument is also decoded once at enqueue: one that does not match its
annotation (an `int` for a `str` parameter) fails the call that enqueues it,
rather than every attempt on a worker until the job is dead-lettered.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from scalepy._typed import UNTYPED, serializer_for
from scalepy.errors import ConfigurationError, SerializationError

if TYPE_CHECKING:
    from collections.abc import Callable

    from scalepy._msgspec import Envelope
    from scalepy.serializers import Serializer

__all__ = ("TaskCodec",)

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_BY_NAME = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class TaskCodec:
    """The serializers of one task: one per parameter, one for the result.

    Args:
        serializer: The queue's serializer.
        function: The task's function.
        origin: The task's name, for messages.

    Raises:
        ConfigurationError: An annotation needs msgspec, which is not installed.
    """

    __slots__ = (
        "_by_name",
        "_envelope",
        "_extra_keyword",
        "_extra_positional",
        "_plain",
        "_positional",
        "result",
    )

    def __init__(self, serializer: Serializer, function: Callable[..., Any], origin: str) -> None:
        def of(name: str) -> Serializer:
            return serializer_for(
                serializer, function, lambda hints: hints.get(name, UNTYPED), origin=origin
            )

        self._plain = serializer
        self.result = of("return")
        try:
            parameters = list(inspect.signature(function).parameters.values())
        except (TypeError, ValueError):  # no signature to read: every argument is plain
            parameters = []
        self._positional = [of(p.name) for p in parameters if p.kind in _POSITIONAL]
        self._by_name = {p.name: of(p.name) for p in parameters if p.kind in _BY_NAME}
        self._extra_positional = next(
            (of(p.name) for p in parameters if p.kind is inspect.Parameter.VAR_POSITIONAL),
            serializer,
        )
        self._extra_keyword = next(
            (of(p.name) for p in parameters if p.kind is inspect.Parameter.VAR_KEYWORD), serializer
        )
        every = [
            *self._positional,
            *self._by_name.values(),
            self._extra_positional,
            self._extra_keyword,
        ]
        self._envelope: Envelope | None = None
        if any(each is not serializer for each in every):
            try:
                from scalepy._msgspec import Envelope  # typed arguments: msgspec embeds them
            except ImportError as exc:
                raise ConfigurationError(f"{origin} takes typed arguments: {exc}") from None
            self._envelope = Envelope(serializer.name)

    def _at(self, index: int) -> Serializer:
        positional = self._positional
        return positional[index] if index < len(positional) else self._extra_positional

    def _named(self, name: str) -> Serializer:
        return self._by_name.get(name, self._extra_keyword)

    def dump_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        """Encode a call's arguments, checking each typed one decodes into its annotation.

        Raises:
            SerializationError: An argument cannot be encoded, or does not match
                its parameter's annotation.
        """
        if self._envelope is None:
            return self._plain.dumps([args, kwargs])
        return self._envelope.pack(
            [self._checked(self._at(i), arg, f"argument {i}") for i, arg in enumerate(args)],
            {
                name: self._checked(self._named(name), value, f"argument {name!r}")
                for name, value in kwargs.items()
            },
        )

    def _checked(self, serializer: Serializer, value: Any, what: str) -> bytes:
        data = serializer.dumps(value)
        if serializer is not self._plain:
            try:
                serializer.loads(data)
            except SerializationError as exc:
                raise SerializationError(f"{what} does not match its annotation: {exc}") from exc
        return data

    def load_arguments(self, data: bytes) -> tuple[list[Any], dict[str, Any]]:
        """Decode a call's arguments, each into its parameter's annotation.

        Raises:
            SerializationError: The bytes are not valid, or an argument does not
                match its parameter's annotation.
        """
        if self._envelope is None:
            args, kwargs = self._plain.loads(data)
            return args, kwargs
        raw_args, raw_kwargs = self._envelope.unpack(data)
        return (
            [self._at(i).loads(raw) for i, raw in enumerate(raw_args)],
            {name: self._named(name).loads(raw) for name, raw in raw_kwargs.items()},
        )
