"""Lua scripts kept as `.lua` files inside a package, identified by their SHA1."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING

from scalepy.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ("Script", "ScriptRegistry")


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script: run with EVALSHA, resent transparently when the server lost it.

    Example:
        >>> Script("hello", "return 1").sha
        'e0e1f9fabfc9d4800c877a703b823ac0578ff8db'
    """

    name: str
    """Short name used in errors and telemetry, e.g. `token_bucket`."""
    source: str = field(repr=False)
    """The Lua source."""
    sha: str = field(init=False)
    """SHA1 of the source, as Redis computes it for EVALSHA."""

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha", digest)


class ScriptRegistry:
    """Every `*.lua` file of one package directory, read once, looked up by name.

    Args:
        package: The package holding the scripts, e.g. `"scalepy.ratelimit"`.
        directory: The folder inside the package, `"lua"` by default.

    Raises:
        ConfigurationError: The directory does not exist or holds no `.lua` file.

    Example:
        `ScriptRegistry("scalepy.ratelimit")["token_bucket"]` is the script in
        `scalepy/ratelimit/lua/token_bucket.lua`.
    """

    __slots__ = ("_location", "_scripts")

    def __init__(self, package: str, directory: str = "lua") -> None:
        self._location = f"{package}/{directory}"
        folder = resources.files(package).joinpath(directory)
        if not folder.is_dir():
            raise ConfigurationError(f"no script directory {self._location!r}")
        self._scripts = {
            entry.name.removesuffix(".lua"): Script(
                entry.name.removesuffix(".lua"), entry.read_text(encoding="utf-8")
            )
            for entry in folder.iterdir()
            if entry.name.endswith(".lua")
        }
        if not self._scripts:
            raise ConfigurationError(f"no .lua file in {self._location!r}")

    def __getitem__(self, name: str) -> Script:
        try:
            return self._scripts[name]
        except KeyError:
            known = ", ".join(sorted(self._scripts))
            raise KeyError(f"no script {name!r} in {self._location!r}; known: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._scripts

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._scripts))

    def __len__(self) -> int:
        return len(self._scripts)

    def __repr__(self) -> str:
        return f"<ScriptRegistry {self._location!r} scripts={sorted(self._scripts)}>"
