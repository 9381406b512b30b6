"""The built wheel, in a fresh virtual environment, runs the FastAPI page's app and its tests.

What a user gets from `pip install 'NAME[fastapi,redis]'`: the wheel is built from
this checkout, installed with its extras (dependencies from the package index)
into a venv that sees nothing of the source tree, and the page's app and its test
file run there against the real Redis.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "docs" / "examples" / "fastapi_app.py"
TESTS = ROOT / "tests" / "integrations" / "test_fastapi_app.py"


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run `command`; return its output, or fail the test with it."""
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert 0 == result.returncode, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_the_wheel_runs_the_fastapi_page_app_and_its_tests(tmp_path: Path, redis_url: str) -> None:
    """The app runs as a program and every test of its page passes, on the installed wheel."""
    name = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, ROOT, cwd=tmp_path)
    (wheel,) = dist.glob("*.whl")
    # No pip of its own (ensurepip is slow): this interpreter's pip installs into it.
    venv.create(tmp_path / "venv", with_pip=False)
    python = tmp_path / "venv" / "bin" / "python"
    run(
        sys.executable, "-m", "pip", "--python", python, "install", "--quiet",
        f"{name}[fastapi,redis] @ {wheel.as_uri()}", "pytest", "pytest-asyncio", "httpx",
        cwd=tmp_path,
    )  # fmt: skip
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(APP, app)
    shutil.copy(TESTS, app)
    env = {
        key: value for key, value in os.environ.items() if key not in {"PYTHONPATH", "VIRTUAL_ENV"}
    }
    env["SCALEPY_TEST_REDIS_URL"] = redis_url

    location = run(python, "-c", "import scalepy; print(scalepy.__file__)", cwd=app, env=env)
    assert str(tmp_path / "venv") in location  # the wheel, not this checkout
    run(python, APP.name, cwd=app, env=env)
    report = run(python, "-m", "pytest", "-p", "no:cacheprovider", TESTS.name, cwd=app, env=env)
    tests = sum(1 for line in TESTS.read_text(encoding="utf-8").splitlines() if "def test_" in line)
    assert f"{tests} passed" in report, report
