"""The Redis server a benchmark starts for itself: answers while in use, gone afterwards."""

from __future__ import annotations

import os
import socket

import pytest

from _private_redis import private_redis


def test_the_server_answers_on_its_port_and_stops_at_the_end() -> None:
    """Inside the block the server answers PING on its port; after it, nothing listens."""
    with private_redis() as server:
        with socket.create_connection(("127.0.0.1", server.port)) as conn:
            conn.sendall(b"PING\r\n")
            assert b"+PONG\r\n" == conn.recv(16)
        assert f"redis://127.0.0.1:{server.port}" == server.url
        pid = server.pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped: no such process
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
