"""benchmarks/todo_soak.py: what a failed soak says about its failures."""

from __future__ import annotations

from _openloop import NO_RESPONSE, Records, Request
from todo_soak import failure_kinds


def test_failures_are_told_by_kind_status_and_a_sample() -> None:
    """Each (kind, status) once, with its count and the first answer or client error."""
    records = Records()
    read = Request("GET", "/todos/1", label="read")
    write = Request("POST", "/todos", label="create")
    rows = [
        records.add(read, 0, 0.0, 0.0, 0.1, 200),
        records.add(read, 1, 0.1, 0.1, 0.2, 500),
        records.add(read, 2, 0.2, 0.2, 0.3, 500),
        records.add(write, 3, 0.3, 0.3, 0.4, NO_RESPONSE),
    ]
    records.answers[rows[1]] = b"HTTP/1.1 500 Internal Server Error\r\n\r\n{}"
    records.errors[rows[3]] = "ConnectionResetError"
    assert [
        "create -> 0 x1: ConnectionResetError",
        "read -> 500 x2: HTTP/1.1 500 Internal Server Error |  | {}",
    ] == failure_kinds(records, rows[1:])
