"""Which serializer an annotation gets: plain JSON, msgspec, Pydantic, or a refusal."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import sys
from typing import Annotated, Any, Literal

import pydantic
import pytest

from scalepy._annotations import involves_pydantic, json_native, type_name
from scalepy._typed import annotations_of, typed
from scalepy.errors import ConfigurationError
from scalepy.queue import Queue
from scalepy.serializers import JsonSerializer, PickleSerializer


@dataclasses.dataclass
class Row:
    """A dataclass."""

    id: int


class Model(pydantic.BaseModel):
    """A Pydantic model."""

    id: int


@pytest.mark.parametrize(
    ("annotation", "native"),
    [
        (int, True),
        (str | None, True),
        (list[dict[str, float | None]], True),
        (Annotated[list[int], "doc"], True),
        (Literal["a", 1, None], True),
        (dict, True),
        (Any, True),
        (dict[int, str], False),  # JSON turns the keys into strings
        (tuple[int, int], False),  # and tuples into lists
        (Literal[1.5], False),
        (datetime.datetime, False),
        (list[Row], False),
    ],
)
def test_json_native_says_what_plain_json_gives_back_unchanged(
    annotation: Any, native: bool
) -> None:
    """Builtins, lists, str-keyed dicts and unions of them are native; anything else is not."""
    assert native == json_native(annotation)


def test_pydantic_models_are_found_anywhere_in_an_annotation() -> None:
    """A model nested in a union or a container is found; messages spell types as code does."""
    assert involves_pydantic(dict[str, list[Model | None]])
    assert not involves_pydantic(list[Row] | Literal["Model"])
    assert "dict[str, Row] | None" == type_name(dict[str, Row] | None)
    assert "tuple[int, ...]" == type_name(tuple[int, ...])


def test_annotations_of_a_callable_object_are_empty() -> None:
    """A partial has no annotations to read: its values are untyped."""
    assert {} == annotations_of(functools.partial(print))


def test_a_serializer_without_the_typed_ability_is_kept() -> None:
    """A signed pickle keeps types already: it is used as it is."""
    pickle = PickleSerializer(b"k" * 32)
    assert pickle is typed(pickle, list[Row], origin="f")


def test_without_msgspec_plain_json_types_stay_plain_and_others_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without msgspec `dict[str, int]` keeps JSON; `list[Row]` and typed task args raise."""
    monkeypatch.setitem(sys.modules, "scalepy._msgspec", None)  # as if msgspec were missing
    json = JsonSerializer()
    assert json is typed(json, dict[str, list[int]], origin="f")
    with pytest.raises(ConfigurationError, match=r"f returns or takes list\[Row\]"):
        typed(json, list[Row], origin="f")
    queue = Queue("memory://", name="no-msgspec")
    with pytest.raises(ConfigurationError, match="takes typed arguments"):

        @queue.task
        async def store(model: Model) -> None: ...
