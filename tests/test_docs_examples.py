"""Every program in docs/examples runs cleanly and is shown on some docs page."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.py"))
PAGES = sorted((ROOT / "docs").glob("*.md"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_runs(example: Path) -> None:
    """The example exits with status 0 against the local services (its asserts hold)."""
    result = subprocess.run(
        [sys.executable, str(example)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert 0 == result.returncode, result.stdout + result.stderr


def test_every_example_is_included_in_a_page() -> None:
    """Each docs/examples file is pulled into some page with a snippet, so none is orphaned."""
    pages = "\n".join(page.read_text(encoding="utf-8") for page in PAGES)
    orphans = [path.name for path in EXAMPLES if f'--8<-- "docs/examples/{path.name}"' not in pages]
    assert [] == orphans
