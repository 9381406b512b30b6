"""Commands in their wire form: encoded once, when submitted, and only bytes after that.

A command that cannot be encoded fails its own caller in `encode_command`, before
it joins a pipeline: nothing downstream encodes, so a bad argument can never stop a
batch half-written and leave the connection's replies one caller out of step.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, cast

import hiredis

from scalepy.errors import SerializationError

if TYPE_CHECKING:
    from collections.abc import Callable

    from redis.typing import EncodableT

__all__ = ("Command", "encode_command", "leading_arguments")

Command = tuple["EncodableT", ...]

# hiredis's stub types the command as a one-element tuple; it takes any length.
_pack = cast("Callable[[Command], bytes]", hiredis.pack_command)

_ACCEPTED = "Redis arguments must be str, bytes, int or finite float"


def encode_command(command: Command) -> bytes:
    """Return `command` as RESP bytes, ready to be written.

    Args:
        command: The command name and its arguments.

    Returns:
        The command as a RESP array of bulk strings.

    Raises:
        SerializationError: The command is empty, or an argument is of another type
            (None, bool, bytearray, ...), a str holding a lone surrogate (not valid
            UTF-8), or a NaN or infinite float (spell Redis's infinite bounds as the
            strings `"-inf"` and `"+inf"`). The message names the argument's
            position and type, never its value.
    """
    if not command:
        # Redis answers nothing to an empty array, which would shift every later reply.
        raise SerializationError(f"cannot send an empty command; {_ACCEPTED}")
    try:
        wire = _pack(command)
    except (TypeError, ValueError):  # UnicodeEncodeError is a ValueError
        raise _unencodable(command) from None
    for argument in command:
        if isinstance(argument, float) and not math.isfinite(argument):
            raise _unencodable(command)
    return wire


def _unencodable(command: Command) -> SerializationError:
    """Name the first argument of `command` that cannot be encoded (failure path only)."""
    name = command[0]
    if isinstance(name, bytes):
        shown = name.decode(errors="replace")
    else:
        shown = name if isinstance(name, str) and _encodes(name) else "'?'"
    position = next(index for index, argument in enumerate(command) if not _encodes(argument))
    argument = command[position]
    if isinstance(argument, float):
        what = repr(argument)
    elif isinstance(argument, str):
        what = "a str with a lone surrogate (not valid UTF-8)"
    else:
        what = f"a {type(argument).__name__}"
    return SerializationError(f"argument {position} of {shown} is {what}; {_ACCEPTED}")


def _encodes(argument: object) -> bool:
    if isinstance(argument, float):
        return math.isfinite(argument)
    try:
        _pack(cast("Command", (argument,)))
    except (TypeError, ValueError):
        return False
    return True


def leading_arguments(wire: bytes, count: int) -> list[bytes]:
    """Return the first `count` arguments of an encoded command (fewer if it has fewer).

    Args:
        wire: A command as `encode_command` returned it.
        count: How many arguments to read; the rest of `wire` is not looked at.

    Returns:
        The arguments, as bytes.
    """
    end = wire.index(b"\r\n")
    total = int(wire[1:end])
    start = end + 2
    found: list[bytes] = []
    for _ in range(min(count, total)):
        end = wire.index(b"\r\n", start)
        size = int(wire[start + 1 : end])
        start = end + 2
        found.append(wire[start : start + size])
        start += size + 2
    return found
