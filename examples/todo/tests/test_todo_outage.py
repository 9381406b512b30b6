"""A failing side effect is logged once per outage: one WARNING, one INFO, the rest counted."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scalepy.errors import BackendUnavailable
from todo.outage import OutageLog

if TYPE_CHECKING:
    import pytest


def test_an_outage_is_one_warning_and_one_info_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """150 failures log one WARNING naming the first; the recovery logs how many failed."""
    log = OutageLog(logging.getLogger("todo.test"), "cache invalidation after a write")
    with caplog.at_level(logging.INFO, logger="todo.test"):
        log.succeeded()  # no outage: nothing to say
        for n in range(150):
            log.failed(BackendUnavailable("connection refused", backend="redis://r"), f"todo:{n}")
        log.succeeded()
        log.succeeded()

    assert [
        (
            logging.WARNING,
            "cache invalidation after a write failed (BackendUnavailable: connection refused "
            "[redis://r]): todo:0; further failures are counted until it works again",
        ),
        (logging.INFO, "cache invalidation after a write works again after 150 failures"),
    ] == [(record.levelno, record.getMessage()) for record in caplog.records]


def test_each_outage_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    """A second outage after a recovery gets its own WARNING."""
    log = OutageLog(logging.getLogger("todo.test"), "enqueueing")
    with caplog.at_level(logging.INFO, logger="todo.test"):
        for _ in range(2):
            log.failed(OSError("down"), "todo 1")
            log.failed(OSError("down"), "todo 2")
            log.succeeded()

    levels = [record.levelno for record in caplog.records]
    assert [logging.WARNING, logging.INFO] * 2 == levels
