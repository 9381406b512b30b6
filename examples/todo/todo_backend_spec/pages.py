"""The spec suite's page: its files, served over HTTP from an origin of their own.

The suite is a mocha page (todo-backend-js-spec) that calls the API with jQuery from
the browser, so the API sees a real cross-origin client: it must answer the CORS
preflights for the page's origin. The page is served on its own loopback port (a
different origin from nginx's), from a copy of the repository's files taken with
`git archive` (the checkout is a bare mirror: no work tree).
"""

from __future__ import annotations

import functools
import io
import subprocess
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ("SpecPages", "extract")


def extract(repository: Path, target: Path, *, revision: str = "HEAD") -> None:
    """Write the files of `revision` of the git repository `repository` into `target`.

    Raises:
        subprocess.CalledProcessError: `repository` is not a git repository with `revision`.
    """
    archive = subprocess.run(
        ["git", "--git-dir", str(repository), "archive", "--format=tar", revision],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves files; says nothing per request (the browser's console says what failed)."""

    def log_message(self, format: str, *args: object) -> None:
        del format, args


class SpecPages:
    """An HTTP server for the files in `root` on 127.0.0.1 and a free port, in a thread.

    Args:
        root: The directory served (the suite's index.html at its top).
    """

    def __init__(self, root: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(root))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:PORT`, the origin the API must allow."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
