#!/usr/bin/env bash
# The project's main job: set up .venv and the local services, then run the core demo
# (examples/core_demo.py) against them. Arguments are passed to the demo.
#
# usage: scripts/demo.sh [DEMO_ARGS...]
set -euo pipefail
# shellcheck source=scripts/_bootstrap.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/_bootstrap.sh"

bootstrap
say "running examples/core_demo.py"
exec .venv/bin/python examples/core_demo.py "$@"
