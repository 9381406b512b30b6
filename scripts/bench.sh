#!/usr/bin/env bash
# The Todo API under load (issue 16): benchmarks/todo_load.py with what it needs.
# Sets up .venv and the local services (scripts/_bootstrap.sh), installs wrk (the load
# generator) and nginx (in front of the replicas) from Debian's packages when missing,
# then runs the benchmark with the arguments given (see --help for them).
#
# usage: scripts/bench.sh [benchmarks/todo_load.py options]
#   e.g. scripts/bench.sh --quick             a short smoke run
#        scripts/bench.sh --json results/todo_load.json
#
# Environment: the variables of scripts/_bootstrap.sh (PYTHON, SCALEPY_SKIP_SERVICES).
set -euo pipefail
# shellcheck source=scripts/_bootstrap.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/_bootstrap.sh"

bootstrap
missing=()
command -v wrk >/dev/null || missing+=(wrk)
_bootstrap_has_nginx || missing+=(nginx)
if ((${#missing[@]} > 0)); then
    _bootstrap_apt_install "${missing[@]}"
fi
export PYTHONPATH=examples/todo${PYTHONPATH:+:$PYTHONPATH}
exec .venv/bin/python benchmarks/todo_load.py "$@"
