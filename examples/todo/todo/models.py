"""The API's types: what a request may send and what a response holds (msgspec Structs).

They are the single description of the data: msgspec validates request bodies
against them (a wrong type, a 256-character title, an unknown field are refused
before any handler runs), encodes responses, and gives the JSON Schemas the
OpenAPI document publishes. `TodoRecord` is a row as the repository reads and
caches it; `Todo` is what a client sees: the record plus its absolute `url`.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - msgspec reads the annotations at run time
from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

__all__ = ("MAX_TITLE", "Todo", "TodoIn", "TodoPatch", "TodoRecord")

MAX_TITLE = 255
# PostgreSQL text cannot hold NUL, so a title with one is invalid input, not a 500.
_NO_NUL = r"^[^\x00]*$"
Title = Annotated[
    str,
    Meta(min_length=1, max_length=MAX_TITLE, pattern=_NO_NUL, description="What to do."),
]
Description = Annotated[
    str, Meta(max_length=10_000, pattern=_NO_NUL, description="Details, free text.")
]
# `order` is a PostgreSQL integer: a larger number would fail in the database. JSON
# Schema counts 1.0 as an integer, and so do clients that send every number as a
# double, so a whole float is accepted (and made an int by `_whole`); the schema says
# "integer", which excludes 1.5 as the decoder does.
_INTEGER = Meta(ge=-(2**31), le=2**31 - 1)
Order = Annotated[
    Annotated[int, _INTEGER] | Annotated[float, _INTEGER],
    Meta(description="Position chosen by the client.", extra_json_schema={"type": "integer"}),
]


# --8<-- [start:input]
class TodoIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The body of `POST /todos`: a new todo."""

    title: Title
    description: Description = ""
    completed: bool = False
    order: Order | None = None

    def __post_init__(self) -> None:
        self.order = _whole(self.order)


class TodoPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """The body of `PATCH /todos/{id}`: the fields to change, the others left as they are."""

    title: Title | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    completed: bool | UnsetType = UNSET
    order: Order | UnsetType | None = UNSET

    def __post_init__(self) -> None:
        if not isinstance(self.order, UnsetType):
            self.order = _whole(self.order)

    def changes(self) -> dict[str, object]:
        """The fields the client sent, by column name."""
        return {
            name: value
            for name in self.__struct_fields__
            if (value := getattr(self, name)) is not UNSET
        }


# --8<-- [end:input]


def _whole(number: float | None) -> int | None:
    """`order` as an int: 3.0 is 3; 3.5 is refused (msgspec makes the error a 422)."""
    if isinstance(number, float):
        if not number.is_integer():
            raise ValueError(f"order must be a whole number, got {number}")
        return int(number)
    return number


class TodoRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A todo as stored: what the repository returns and the cache keeps."""

    id: int
    title: str
    description: str
    completed: bool
    order: int | None
    created_at: datetime
    updated_at: datetime


class Todo(msgspec.Struct, frozen=True, kw_only=True):
    """A todo as the API shows it."""

    id: int
    title: str
    description: str
    completed: bool
    order: int | None
    url: Annotated[str, Meta(description="This todo's absolute URL.")]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_record(cls, record: TodoRecord, url: str) -> Todo:
        """The record as shown, at `url`."""
        return cls(
            id=record.id,
            title=record.title,
            description=record.description,
            completed=record.completed,
            order=record.order,
            url=url,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )
