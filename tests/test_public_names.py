"""Tests, benchmarks and examples import a scalepy name from its public home when it has one.

A name a package exports (in its `__all__`) is imported from that package, never
from the private module that defines it, so private modules stay free to move.
Internals a test needs on purpose (a pure core, a Lua script's mirror) are still
imported from their private module, with a comment saying why.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("tests", "benchmarks", "examples", "docs/examples")


def _public_home(module: str) -> str | None:
    """The package `module` is private to (`scalepy.cache` for `scalepy.cache._redis`)."""
    parts = module.split(".")
    private = [i for i, part in enumerate(parts) if part.startswith("_")]
    return ".".join(parts[: private[0]]) if private else None


def _private_imports_of_public_names(path: Path, root: Path = ROOT) -> list[str]:
    """`path:line: name (from package)` for each public name `path` imports privately."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("scalepy."):
            continue
        home = _public_home(node.module or "")
        if home is None:
            continue
        private, public = importlib.import_module(node.module or ""), importlib.import_module(home)
        for alias in node.names:
            exported = alias.name in getattr(public, "__all__", ())
            if exported and getattr(public, alias.name) is getattr(private, alias.name, None):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {alias.name} (from {home})")
    return found


def test_public_names_are_imported_from_their_public_package() -> None:
    """No file imports an exported name through the private module that defines it."""
    files = sorted(
        path
        for folder in SCANNED
        for path in (ROOT / folder).rglob("*.py")
        if ".venv" not in path.parts
    )
    assert len(files) > 100  # the scan sees the suite, not an empty folder
    assert [] == [line for path in files for line in _private_imports_of_public_names(path)]


def test_the_check_sees_a_private_import_of_a_public_name(tmp_path: Path) -> None:
    """The scan reports `RedisCacheStore` imported from `scalepy.cache._redis`."""
    source = tmp_path / "probe.py"
    source.write_text(
        "from scalepy.cache import Cache\n"
        "from scalepy.cache._keys import KeyBuilder\n"  # internal: no public name
        "from scalepy.cache._redis import RedisCacheStore\n",
        encoding="utf-8",
    )
    found = _private_imports_of_public_names(source, tmp_path)
    assert ["probe.py:3: RedisCacheStore (from scalepy.cache)"] == found
