"""schemathesis against a real server: every answer matches /openapi.json, none is a 5xx.

A real `uvicorn` process (real PostgreSQL and Redis: the session's database, a fresh
namespace) serves the document it is fuzzed with, once with bearer tokens on
(`TODO_AUTH=jwt`, every request carrying an admin token; schemathesis also drops it
to check that writes are refused without one) and once with `TODO_AUTH=none`.

`schemathesis run` with every check does, per operation, its coverage phase (boundary
values, every documented status, methods the document does not list: those must be
`405` with `Allow`; with auth on only, as its cases do not depend on auth), its
fuzzing phase (schema-valid and schema-invalid requests), then its stateful phase
(create, read, change, delete chained through the links it infers).
Each response is checked for: no 5xx; a documented status code, content type, headers
and body (problem+json for errors); invalid input refused and valid input accepted;
a deleted todo stays gone. The command line, not schemathesis's pytest plugin: it runs
every phase, prints a curl command that reproduces each failure, and needs no schema at
import time (the plugin's lazy `from_fixture` loader fails on pytest 9).

The example count is bounded and the seed fixed so the run is short and repeatable in
CI; `TODO_FUZZ_EXAMPLES=500 pytest examples/todo/tests/test_todo_openapi_fuzz.py`
hunts longer.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Literal

import pytest
from todo_support import AppProcess, admin_headers

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

    from todo.settings import Settings

_MAX_EXAMPLES = os.environ.get("TODO_FUZZ_EXAMPLES", "4")
_SEED = "20261206"  # fixed: a failure in CI is the same failure on a laptop
_TIMEOUT = 300.0


@pytest.mark.parametrize(
    ("auth", "phases"),
    [
        ("jwt", "examples,coverage,fuzzing,stateful"),
        # The coverage phase's cases do not depend on auth; once is enough for CI's time.
        ("none", "examples,fuzzing,stateful"),
    ],
)
def test_every_answer_matches_the_openapi_document(
    auth: Literal["jwt", "none"], phases: str, settings: Settings, tmp_path: Path
) -> None:
    """`schemathesis run --checks all` finds nothing, with auth on and off."""
    settings = dataclasses.replace(settings, auth=auth)
    headers = admin_headers(settings) if auth == "jwt" else {}
    with AppProcess(settings, tmp_path / "app.log") as app:
        command = [
            sys.executable, "-m", "schemathesis.cli", "run", f"{app.url}/openapi.json",
            "--phases", phases, "--checks", "all", "--max-examples", _MAX_EXAMPLES, "--seed", _SEED,
            "--continue-on-failure", "--no-color", "--warnings", "off",
        ]  # fmt: skip
        for name, value in headers.items():
            # Capitalised: schemathesis drops `Authorization` by that spelling to check
            # that a write without a token is refused.
            command += ["--header", f"{name.title()}: {value}"]
        run = subprocess.run(
            command, capture_output=True, text=True, timeout=_TIMEOUT, check=False, cwd=tmp_path
        )
    assert 0 == run.returncode, f"schemathesis found problems (auth={auth}):\n{run.stdout}"
    assert "No issues found" in run.stdout, run.stdout


async def test_the_answers_every_client_meets_are_documented_by_name(
    client: httpx.AsyncClient,
) -> None:
    """429 and 503 on every operation, 404 on every one of a todo: not only as `4XX`/`5XX`.

    The fuzzer accepts a status that a `4XX` range covers; a client generated from the
    document needs the ones it must handle (retry, not found) spelled out.
    """
    document = (await client.get("/openapi.json")).json()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            listed = set(operation["responses"])
            expected = {"429", "503"} | ({"404"} if "{todo_id}" in path else set())
            assert expected <= listed, f"{method.upper()} {path}: {sorted(listed)}"
