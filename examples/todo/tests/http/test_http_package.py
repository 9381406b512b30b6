"""`todo.http` exports exactly what its `__all__` lists."""

from __future__ import annotations

import types

import todo.http


def test_all_lists_every_public_name_and_nothing_else() -> None:
    """Every public name is in `__all__`, and every name there exists."""
    public = {
        name
        for name, value in vars(todo.http).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(todo.http.__all__)
    assert len(todo.http.__all__) == len(set(todo.http.__all__))
