"""Job arguments and results keep their type (the task's annotations), on a real worker."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import uuid
from typing import Any

import pydantic
import pytest

from scalepy.errors import SerializationError
from scalepy.queue import Queue, Worker
from scalepy.serializers import JsonSerializer, MsgpackSerializer
from tests.queue.conftest import ALL_BACKENDS, WAIT

UTC = datetime.UTC


@dataclasses.dataclass(frozen=True)
class Reminder:
    """A dataclass argument."""

    todo_id: int
    at: datetime.datetime


class Receipt(pydantic.BaseModel):
    """A Pydantic model result."""

    id: uuid.UUID
    amount: decimal.Decimal
    sent: list[datetime.datetime]


AT = datetime.datetime(2026, 12, 6, 8, 30, tzinfo=UTC)


@ALL_BACKENDS
async def test_a_worker_gets_typed_arguments_and_the_result_comes_back_typed(queue: Queue) -> None:
    """Dataclass, datetime, Decimal, *args and **kwargs arrive typed; so does the result."""
    received: list[Any] = []

    @queue.task(name="remind")
    async def remind(
        reminder: Reminder, *extra: datetime.datetime, amount: decimal.Decimal, **tags: uuid.UUID
    ) -> Receipt:
        received.extend([reminder, extra, amount, tags])
        return Receipt(id=tags["user"], amount=amount, sent=[reminder.at, *extra])

    user = uuid.uuid4()
    async with Worker(queue):
        job = await remind.enqueue(Reminder(7, AT), AT, amount=decimal.Decimal("12.50"), user=user)
        receipt = await job.result(timeout=WAIT)
    assert [Reminder(7, AT), (AT,), decimal.Decimal("12.50"), {"user": user}] == received
    assert Receipt(id=user, amount=decimal.Decimal("12.50"), sent=[AT, AT]) == receipt


@ALL_BACKENDS
async def test_untyped_tasks_keep_plain_json(queue: Queue) -> None:
    """Without annotations arguments and results stay what JSON decodes (tuples as lists)."""

    @queue.task(name="echo")
    async def echo(value: Any) -> Any:
        return value

    async with Worker(queue):
        assert [1, 2] == await (await echo.enqueue((1, 2))).result(timeout=WAIT)


async def test_typed_and_untyped_payloads_spell_a_job_alike() -> None:
    """The typed `[args, kwargs]` document is byte for byte the plain one for plain values."""
    for serializer in (JsonSerializer(), MsgpackSerializer()):
        queue = Queue("memory://", name="spelling", serializer=serializer)

        @queue.task(name="typed")
        async def typed(a: int, b: list[str], *, c: str) -> None: ...

        @queue.task(name="plain")
        async def plain(a: Any, b: Any, *, c: Any) -> None: ...

        arguments: tuple[tuple[Any, ...], dict[str, Any]] = ((1, ["x"]), {"c": "y"})
        assert plain.codec.dump_arguments(*arguments) == typed.codec.dump_arguments(*arguments)
        assert ([1, ["x"]], {"c": "y"}) == typed.codec.load_arguments(
            plain.codec.dump_arguments(*arguments)
        )


async def test_an_argument_that_cannot_be_sent_fails_the_enqueue() -> None:
    """A value that cannot be encoded, or not as its annotation, is refused at `enqueue`."""
    queue = Queue("memory://", name="refused")

    @queue.task(name="t")
    async def t(when: datetime.datetime, who: str = "") -> None: ...

    with pytest.raises(SerializationError):
        await t.enqueue(object())  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="argument 'who' does not match its annotation"):
        await t.enqueue(AT, who=42)  # type: ignore[arg-type]
    assert 0 == (await queue.stats()).queued
