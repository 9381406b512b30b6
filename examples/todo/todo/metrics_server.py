"""`serve_metrics()`: a process's Prometheus registry on a port of its own.

The worker has no HTTP server, and an app replica behind nginx on a Unix socket has
no address Prometheus can scrape (it speaks TCP only): `TODO_METRICS_ADDRESS`
(`host:port`) gives either one a plain `/metrics` listener, prometheus_client's,
in a thread, apart from the traffic and never routed by the proxy.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from prometheus_client import start_http_server

if TYPE_CHECKING:
    from collections.abc import Iterator

    from prometheus_client import CollectorRegistry

__all__ = ("serve_metrics", "split_address")


def split_address(address: str) -> tuple[str, int]:
    """Split `host:port` (`[::]:9100` for IPv6).

    Raises:
        ValueError: Not of that form, or the port is outside 0-65535.
    """
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected host:port such as 0.0.0.0:9100, got {address!r}")
    return host.strip("[]"), int(port)


@contextlib.contextmanager
def serve_metrics(registry: CollectorRegistry, address: str) -> Iterator[tuple[str, int]]:
    """Serve `registry` at `http://address/metrics` until the block exits.

    Yields:
        The address bound (the port the kernel chose, for port 0).
    """
    host, port = split_address(address)
    server, thread = start_http_server(port, host, registry=registry)
    try:
        bound = server.server_address
        yield str(bound[0]), int(bound[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
