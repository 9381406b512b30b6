#!/usr/bin/env bash
# The whole check suite, as CI runs it (.ci/run): set up .venv and the local services,
# then lint, format check, type check, tests with branch coverage (floor in pyproject.toml),
# a strict docs build and every page of it in Chromium (scripts/check_site.sh), the offline
# checks of the deployment files (examples/todo/deploy/check.sh), the demo's tour
# (scripts/demo.sh --check) and the Todo-Backend spec suite in Chromium against the same
# stack (scripts/todo_spec.sh). Any failure fails the script, and so does a run with no test.
#
# usage: scripts/test.sh [PYTEST_ARGS...]     e.g. scripts/test.sh -x -k cluster
set -euo pipefail
# shellcheck source=scripts/_bootstrap.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/_bootstrap.sh"

bootstrap

work=$(mktemp -d "${TMPDIR:-/tmp}/scalepy-test.XXXXXX")
trap 'rm -rf -- "$work"' EXIT

step() { printf '\n==> %s\n' "$*"; }

step "ruff check"
.venv/bin/ruff check .

step "ruff format --check"
.venv/bin/ruff format --check .

step "mypy --strict src tests benchmarks examples docs/examples"
.venv/bin/mypy --strict src tests benchmarks examples docs/examples

# The example's tests run a real nginx and a real Prometheus (the demo stack, its alerts;
# check.sh needs promtool), the benchmarks' tests a real wrk, tests/test_docs_site.py a
# real Chromium: installed before pytest, so those tests run, never skip.
missing=()
_bootstrap_has_nginx || missing+=(nginx)
command -v prometheus >/dev/null || missing+=(prometheus)
command -v wrk >/dev/null || missing+=(wrk)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
if ((${#missing[@]} > 0)); then
    _bootstrap_apt_install "${missing[@]}"
fi

step "pytest (under coverage)"
.venv/bin/coverage erase
status=0
.venv/bin/coverage run -m pytest --junitxml="$work/junit.xml" "$@" || status=$?
if ((status == 5)); then
    die "pytest collected no tests"
elif ((status != 0)); then
    die "pytest failed (exit $status)"
fi
# Belt and braces: the run must have executed at least one test that was not skipped.
.venv/bin/python - "$work/junit.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
total = sum(int(suite.get("tests", 0)) for suite in suites)
skipped = sum(int(suite.get("skipped", 0)) for suite in suites)
if total - skipped <= 0:
    sys.exit(f"test.sh: error: no test ran ({total} collected, {skipped} skipped)")
print(f"test.sh: {total - skipped} tests ran ({skipped} skipped)")
EOF

step "coverage"
shopt -s nullglob
parts=(.coverage.*)
shopt -u nullglob
if ((${#parts[@]} > 0)); then
    .venv/bin/coverage combine --quiet
fi
.venv/bin/coverage report

step "mkdocs build --strict"
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir "$work/site"

step "scripts/check_site.sh (every docs page in Chromium: renders, diagrams, links, images)"
bash scripts/check_site.sh "$work/site"

step "examples/todo/deploy/check.sh (Dockerfile, compose, Kubernetes and nginx files, offline)"
bash examples/todo/deploy/check.sh

step "scripts/demo.sh --check (the Todo API stack behind nginx, and its tour)"
bash scripts/demo.sh --check --port 0

step "scripts/todo_spec.sh (the public Todo-Backend spec suite in Chromium, against the stack)"
bash scripts/todo_spec.sh --skip-missing

printf '\ntest.sh: all checks passed\n'
