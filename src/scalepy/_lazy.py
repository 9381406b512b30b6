"""Names a package exports but imports only when first used: those needing an extra."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ("lazy_exports",)


def lazy_exports(
    package: str, sources: Mapping[str, str], *, requires: str
) -> Callable[[str], object]:
    """Return a module `__getattr__` importing each of `sources` from its module on use.

    `import scalepy.cache` stays free of the `redis` extra while
    `scalepy.cache.RedisCacheStore` still works (PEP 562); without the extra, the
    access raises the `ImportError` naming it. The package also imports each name
    under `TYPE_CHECKING`, so type checkers see the class itself.

    Args:
        package: The package's `__name__`, for the error message.
        sources: Each lazily exported name, and the module defining it.
        requires: A module imported first, whose `ImportError` names the extra to
            install (e.g. `scalepy.backends.redis`).

    Returns:
        The `__getattr__` to assign in the package.
    """

    def __getattr__(name: str) -> object:  # noqa: N807 - the module hook's own name
        module = sources.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        importlib.import_module(requires)
        return getattr(importlib.import_module(module), name)

    return __getattr__
