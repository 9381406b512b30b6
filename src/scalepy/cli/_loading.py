"""Loading what the command line names as `module:attribute`: a queue, a hook."""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

from scalepy.errors import ConfigurationError

if TYPE_CHECKING:
    from scalepy.queue import Queue

__all__ = ("load_object", "load_queue")


def load_object(reference: str) -> object:
    """Import `module:attribute` and return what it names.

    Args:
        reference: E.g. `"app.tasks:startup"`; the current directory is importable.

    Raises:
        ValueError: A malformed reference.
        ImportError: The module cannot be imported.
        AttributeError: The module has no such attribute.
    """
    module_name, colon, attribute = reference.partition(":")
    if not colon or not module_name or not attribute:
        raise ValueError(f"expected module:attribute, e.g. app.tasks:queue; got {reference!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return getattr(importlib.import_module(module_name), attribute)


def load_queue(reference: str) -> Queue:
    """Import `module:attribute` and return the queue it names.

    Args:
        reference: E.g. `"app.tasks:queue"`; the current directory is importable.

    Raises:
        ValueError: A malformed reference, or one naming something that is not a `Queue`.
        ConfigurationError: A `memory://` queue: its jobs live in the process that
            made them, so no command of another process can see them.
        ImportError: The module cannot be imported.
        AttributeError: The module has no such attribute.
    """
    from scalepy.backends import MemoryConfig
    from scalepy.queue import Queue

    value = load_object(reference)
    if not isinstance(value, Queue):
        raise ValueError(f"{reference} is a {type(value).__name__}, not a scalepy.queue.Queue")
    if isinstance(value.config, MemoryConfig):
        raise ConfigurationError(
            f"{reference} is a memory:// queue: its jobs live only in the process that "
            "enqueues them, so run its Worker there, or give the queue a redis:// URL"
        )
    return value
