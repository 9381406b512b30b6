"""Templated cache keys, formatted so that distinct field texts never share a key.

Plain `str.format` spells `item('1:2', '3')` and `item('1', '2:3')` alike with
the template `"item:{a}:{b}"`: `item:1:2:3`. Here every field but the last one
is made self-delimiting, according to what follows it in the template:

- text starting with a character `c` other than `%` and the upper-case hex
  digits: `%` and `c` in the field are percent-encoded (`1:2` becomes `1%3A2`
  before a `:`), so the field ends at the first `c`; fields holding neither
  read exactly as plain formatting spells them;
- another field, or text starting with `%` or a hex digit: the field is
  length-prefixed (`7` becomes `1~7`).

The last field needs nothing, as the text after it is fixed. Reading a key left
to right therefore splits it into its fields one way only, and a template with
a single field (`"user:{user_id}"`) formats exactly as `str.format` does.
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ("KeyTemplate",)

_UNSAFE_STARTS = frozenset("%0123456789ABCDEF")  # would clash with a %XX escape


def _percent(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))


def _escaper(follower: str) -> Callable[[str], str]:
    """Return how a field followed by `follower` (text, or "" for another field) is delimited."""
    if not follower or follower[0] in _UNSAFE_STARTS:
        return lambda text: f"{len(text)}~{text}"
    table = str.maketrans({char: _percent(char) for char in ("%", follower[0])})
    return lambda text: text.translate(table)


def _keep(text: str) -> str:
    return text


class KeyTemplate:
    """A key template such as `"item:{a}:{b}"`, formatted injectively (see the module doc).

    Args:
        template: A `str.format` template naming its fields; checked by the caller.
    """

    __slots__ = ("_fields", "_plain", "_template", "_trailing")

    def __init__(self, template: str) -> None:
        self._template = template
        pending = ""  # literal text since the last field ("{{" parses as a part of its own)
        segments: list[tuple[str, str]] = []  # (literal before the field, "{name!conv:spec}")
        for literal, name, spec, conversion in string.Formatter().parse(template):
            pending += literal
            if name is not None:
                bang = f"!{conversion}" if conversion else ""
                segments.append((pending, f"{{{name}{bang}:{spec}}}"))
                pending = ""
        self._trailing = pending
        self._plain = len(segments) <= 1
        self._fields: list[tuple[str, str, Callable[[str], str]]] = []
        for index, (literal, field) in enumerate(segments):
            following = segments[index + 1][0] if index + 1 < len(segments) else None
            # The last field needs no delimiting: the text after it is fixed.
            delimit = _keep if following is None else _escaper(following)
            self._fields.append((literal, field, delimit))

    def __call__(self, arguments: Mapping[str, Any]) -> str:
        """Return the key for these bound arguments.

        Raises:
            Exception: Whatever formatting a field raises (a missing attribute, a bad spec).
        """
        if self._plain:
            return self._template.format_map(arguments)
        parts: list[str] = []
        for literal, field, delimit in self._fields:
            parts += (literal, delimit(field.format_map(arguments)))
        parts.append(self._trailing)
        return "".join(parts)

    def __repr__(self) -> str:
        return f"KeyTemplate({self._template!r})"
