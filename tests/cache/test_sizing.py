"""The L1's size estimate: what a decoded value really holds, compared with tracemalloc."""

from __future__ import annotations

import dataclasses
import json
import pickle
import sys
import tracemalloc
from collections import Counter, OrderedDict, defaultdict
from typing import TYPE_CHECKING, Any

import pytest

# The L1's internal size estimate, checked directly against tracemalloc.
from scalepy.cache._sizing import held_size
from tests.cache.processes import profile

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclasses.dataclass
class Account:
    """A pickled user type: its attributes live in its __dict__."""

    account_id: int
    owner: str
    roles: list[str]


class Slotted:
    """A pickled user type with slots."""

    __slots__ = ("name", "values")

    def __init__(self, seed: int) -> None:
        self.name = f"slotted-{seed}"
        self.values = [seed * 1000 + i for i in range(20)]

    def __reduce__(self) -> tuple[type[Slotted], tuple[int]]:
        return Slotted, (int(self.name.rpartition("-")[2]),)


def allocated(make: Callable[[int], Any], count: int = 2000) -> float:
    """Bytes tracemalloc sees allocated per value made by `make`."""
    make(0)  # warm: caches and interned names are not the values' memory
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [make(i) for i in range(1, count + 1)]
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return used / len(kept) - 8  # less the list's slot


@pytest.mark.parametrize(
    "make",
    [
        lambda i: json.loads(json.dumps(profile(10**6 + i))),
        lambda i: json.loads(json.dumps([f"item-{10**6 + i}-{j}" for j in range(40)])),
        lambda i: pickle.loads(pickle.dumps(Account(10**6 + i, f"owner-{i}", ["a", f"r{i}"]))),
        lambda i: pickle.loads(pickle.dumps(Slotted(10**6 + i))),
        # dict subclasses with str keys: the collector's traversal skips such keys
        lambda i: pickle.loads(pickle.dumps(Counter({f"word-{i}-{j}": j for j in range(40)}))),
        lambda i: pickle.loads(
            pickle.dumps(OrderedDict((f"field-{i}-{j}", 1000 + j) for j in range(40)))
        ),
        lambda i: pickle.loads(
            pickle.dumps(defaultdict(list, {f"k-{i}-{j}": [j] for j in range(40)}))
        ),
    ],
    ids=[
        "json-record",
        "json-strings",
        "pickled-instance",
        "pickled-slots",
        "pickled-counter",
        "pickled-ordered-dict",
        "pickled-defaultdict",
    ],
)
def test_the_estimate_is_close_to_what_is_allocated(make: Callable[[int], Any]) -> None:
    """Decoded values are estimated within -10 % / +60 % of their allocations.

    The estimate errs high: objects the process shares (small ints, one-letter
    strings) are counted in every value that refers to them.
    """
    sample = make(10**7)
    ratio = held_size(sample) / allocated(make)
    assert 0.9 <= ratio <= 1.6, f"estimate / allocated = {ratio:.2f}"


def test_shared_and_cyclic_objects_are_counted_once() -> None:
    """An object reached twice counts once; a cycle terminates; classes are not counted."""
    shared = ["x" * 1000]
    assert held_size([shared, shared]) == sys.getsizeof([shared, shared]) + held_size(shared)
    cycle: list[Any] = []
    cycle.append(cycle)
    assert sys.getsizeof(cycle) == held_size(cycle)
    account = Account(1, "o", [])
    assert held_size(account) < 1000  # not its class, its module or the dataclass machinery


def test_atoms_are_their_own_size() -> None:
    """Strings, bytes and numbers refer to nothing else."""
    for atom in ("é" * 10, b"x" * 100, 2**100, 1.5, None, True):
        assert sys.getsizeof(atom) == held_size(atom)
