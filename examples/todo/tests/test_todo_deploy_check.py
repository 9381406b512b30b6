"""deploy/check.sh: each step fails, with its tool's message, on a file broken its way.

scripts/test.sh runs check.sh on the shipped files, where every step passes; a check that
never fails proves nothing, so each step is run here on a copy of the files with one
mistake of the kind it exists to catch. The tools are the ones check.sh installs (into
.venv/deploy-tools, shared with scripts/test.sh's run: the first test may install them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[3]
_DEPLOY = Path("examples/todo/deploy")
_TIMEOUT = 300.0  # the first run installs the tools


def _copy_of_the_repository(root: Path) -> None:
    """What check.sh reads, laid out as in the repository; the image's sources as stubs."""
    shutil.copytree(_ROOT / _DEPLOY, root / _DEPLOY)
    (root / "scripts").mkdir()
    shutil.copy(_ROOT / "scripts/_bootstrap.sh", root / "scripts")
    shutil.copy(_ROOT / "examples/todo/todo/settings.py", root / "examples/todo/todo/settings.py")
    (root / "src").mkdir()
    for stub in ("pyproject.toml", "README.md", "LICENSE", "examples/todo/pyproject.toml"):
        (root / stub).touch()


def _check(root: Path, *steps: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEPLOY_TOOLS": str(_ROOT / ".venv/deploy-tools")}
    return subprocess.run(
        ["bash", str(root / _DEPLOY / "check.sh"), *steps],
        capture_output=True,
        text=True,
        env=env,
        timeout=_TIMEOUT,
        check=False,
    )


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is no longer in {path.name}: update this test"
    path.write_text(text.replace(old, new, 1))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A repository root holding a fresh copy of what check.sh reads."""
    (tmp_path / "examples/todo/todo").mkdir(parents=True)
    _copy_of_the_repository(tmp_path)
    return tmp_path


def test_every_step_passes_on_the_shipped_files(root: Path) -> None:
    """The copy is complete: the mistakes below are the only reason a step fails."""
    result = _check(root)

    assert result.returncode == 0, result.stderr
    assert "all deployment checks passed" in result.stdout


# step, file (in deploy/), text, its broken version, what the failure must say
_MISTAKES = [
    ("dockerfile-paths", "Dockerfile", "COPY src/ src/", "COPY source/ src/",
     "Dockerfile copies source/, which does not exist"),
    ("hadolint", "Dockerfile", "EXPOSE 8000", "EXPOSE 8000\nRUN cd /tmp", "DL3003"),
    ("compose-schema", "compose.yaml", "    stop_grace_period: 45s",
     "    stop_grace_period: 45s\n    replica: 3", "'replica' was unexpected"),
    ("k8s-schemas", "k8s/base/app-deployment.yaml", "      maxSurge: 1",
     "      maxSurge: 1\n      maxSurg: 1", "'maxSurg' was unexpected"),
    ("k8s-schemas", "k8s/base/worker-scaledobject.yaml", "minReplicaCount: 1",
     "minReplicaCount: one", "minReplicaCount must be integer"),
    ("k8s-schemas", "k8s/base/kustomization.yaml", "TODO_NAMESPACE=todo",
     "TODO_NAMESPACE=notes", "the queue's ready jobs (TODO_NAMESPACE) are in"
     " 'scalepy:queue:{notes}:ready:0'"),
    ("consistency", "compose.yaml", '      - "20"', '      - "25"',
     "the worker's command differs between compose.yaml and worker-deployment.yaml"),
    ("consistency", "k8s/base/app-deployment.yaml", "terminationGracePeriodSeconds: 50",
     "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds < drain delay"),
    ("nginx", "nginx.conf", "keepalive 32;", "keepalive 32 64;",
     'invalid number of arguments in "keepalive" directive'),
    ("promtool-rules", "observability/alerts.yml", "for: 10s", "for: 10 seconds",
     'not a valid duration string: "10 seconds"'),
    ("promtool-test", "observability/alerts.yml", "lag_seconds[1m])) > 0.1",
     "lag_seconds[1m])) > 1", "alertname: TodoEventLoopLag, time: 4m"),
    ("promtool-config", "observability/prometheus.yml", "  scrape_interval: 15s",
     "  scrape_intervall: 15s", "field scrape_intervall not found"),
    ("promtool-config", "observability/prometheus-kubernetes.yml", r"regex: ([^:]+)(?::\d+)?",
     r"regex: ([^:]+(?::\d+)?", "error parsing regexp"),
]  # fmt: skip


@pytest.mark.parametrize(("step", "name", "old", "new", "message"), _MISTAKES)
def test_a_step_fails_on_its_mistake_with_the_tools_message(
    root: Path, step: str, name: str, old: str, new: str, message: str
) -> None:
    """One mistake: its step exits 1, naming itself, with the tool's own message."""
    _replace(root / _DEPLOY / name, old, new)

    result = _check(root, step)

    assert result.returncode == 1
    assert message in result.stdout + result.stderr
    assert f"failed: {step}" in result.stderr


def test_an_unknown_step_is_refused_before_anything_runs(root: Path) -> None:
    """A misspelt step name is an error, not a run that checks nothing."""
    result = _check(root, "kustomise")

    assert result.returncode == 1
    assert "no step 'kustomise'" in result.stderr
    assert "-->" not in result.stdout
