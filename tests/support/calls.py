"""Counting the Python calls scalepy's own code makes: a cost that load cannot blur."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import scalepy

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

__all__ = ("scalepy_calls",)

_PACKAGE = str(Path(scalepy.__file__).parent)


def scalepy_calls(action: Callable[[], object]) -> int:
    """Run `action` and return how many Python frames of scalepy's code it entered.

    A generator counts once per resumption, as it costs a frame each time.
    """
    calls = 0

    def count(frame: FrameType, event: str, arg: object) -> None:
        nonlocal calls
        if event == "call" and frame.f_code.co_filename.startswith(_PACKAGE):
            calls += 1

    sys.setprofile(count)
    try:
        action()
    finally:
        sys.setprofile(None)
    return calls
