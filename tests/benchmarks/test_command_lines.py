"""Every benchmark script answers `--help`: its documented command line at least starts."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(
    path
    for path in (ROOT / "benchmarks").glob("[!_]*.py")
    if 'if __name__ == "__main__":' in path.read_text()  # a script, not a module of them
)


async def _help(script: Path) -> tuple[int, str]:
    """Run `script --help` as the docs do (repository root and the example on the path)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "examples/todo")])}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        "--help",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return await process.wait(), output.decode(errors="replace")


async def test_every_benchmark_prints_its_usage() -> None:
    """A help text with a stray `%` made argparse raise instead of printing it."""
    assert len(SCRIPTS) > 10
    results = await asyncio.gather(*(_help(script) for script in SCRIPTS))
    failed = {
        script.name: output.splitlines()[-1:]
        for script, (status, output) in zip(SCRIPTS, results, strict=True)
        if status != 0 or "usage:" not in output
    }
    assert {} == failed
