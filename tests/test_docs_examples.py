"""Every program in docs/examples runs cleanly and is shown on some docs page.

A `test_*.py` file there is a page's test module, run with pytest; any other file is a
program, run with Python.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.py"))
PAGES = sorted((ROOT / "docs").glob("*.md"))
# The getting-started app reads the name a service would use; here, the test server.
ENV = {
    **os.environ,
    "REDIS_URL": os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
}


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_runs(example: Path) -> None:
    """The example exits with status 0 against the local services (its asserts hold)."""
    runner = (
        ["-m", "pytest", "-q", "-p", "no:cacheprovider"] if example.name.startswith("test_") else []
    )
    result = subprocess.run(
        [sys.executable, *runner, str(example)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=ENV,
        check=False,
    )
    assert 0 == result.returncode, result.stdout + result.stderr


def test_every_example_is_included_in_a_page() -> None:
    """Each docs/examples file is pulled into some page with a snippet (whole or a section)."""
    pages = "\n".join(page.read_text(encoding="utf-8") for page in PAGES)
    included = set(re.findall(r'--8<-- "docs/examples/([^":]+)(?::[\w-]+)?"', pages))
    orphans = [path.name for path in EXAMPLES if path.name not in included]
    assert [] == orphans
