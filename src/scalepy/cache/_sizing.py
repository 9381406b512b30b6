"""An estimate of the memory a decoded value holds, for the L1's byte bound.

`held_size(value)` adds `sys.getsizeof` of the value and of every object it
reaches: the keys and items of dicts (`Counter`, `defaultdict` and other
subclasses included), lists, tuples and sets, and for any other
object what it refers to (`gc.get_referents`: an instance's attributes), each
object once. Classes, modules and functions are shared by the whole process and
not counted. The L1 adds `sys.getsizeof` of the key and a fixed overhead per
entry (its bookkeeping).

How accurate, against what `tracemalloc` sees allocated (tests/cache/test_sizing.py):
1.0-1.15 times for decoded JSON records and lists, about 1.5 times for small
instances of user classes (an instance's dict reports more than it allocates).
It errs high where values share objects (small ints, one-letter strings are
shared by the whole process but counted in every value) and low for memory a C
extension holds outside Python objects that `sys.getsizeof` does not report.
Measured from outside, an L1 of 8 MiB filled with decoded records grew the
process by 1.07 times its bound (tests/cache/test_processes.py).
"""

from __future__ import annotations

import gc
import sys
import types
from typing import Any, Final

__all__ = ("ENTRY_OVERHEAD", "held_size")

ENTRY_OVERHEAD: Final = 200
"""Bytes the L1 spends per entry besides its key and value: its record and LRU slot."""

_ATOMS: Final = frozenset({str, int, float, bytes, bool, type(None), complex})  # refer to nothing
_SEQUENCES: Final = frozenset({list, tuple, set, frozenset})
_SHARED: Final = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)


def held_size(value: Any) -> int:
    """Return the estimated bytes `value` and everything it reaches take (see the module doc)."""
    getsizeof = sys.getsizeof
    total = getsizeof(value)
    if type(value) in _ATOMS:
        return total
    seen = {id(value)}
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if isinstance(item, dict):  # subclasses too: the collector's walk skips str keys
            children: Any = [*item.keys(), *item.values()]
        elif kind in _SEQUENCES:
            children = item
        else:  # an instance: its slots, or its __dict__, whose keys are shared names
            children = []
            for ref in gc.get_referents(item):
                if type(ref) is dict and id(ref) not in seen:
                    seen.add(id(ref))
                    total += getsizeof(ref)
                    children += ref.values()
                elif not isinstance(ref, _SHARED):
                    children.append(ref)
        for child in children:
            if type(child) in _ATOMS:
                total += getsizeof(child)
            elif id(child) not in seen:
                seen.add(id(child))
                total += getsizeof(child)
                stack.append(child)
    return total
