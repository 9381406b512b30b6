#!/usr/bin/env bash
# The public Todo-Backend spec suite (todobackend.com's todo-backend-js-spec, a mocha page)
# in a real browser against the Todo API stack: nginx in front of N replicas and a worker,
# as `scripts/demo.sh --serve` runs it, with TODO_AUTH=none and the page's origin allowed by
# CORS. Debian's Chromium, driven by Playwright (no browser download), loads the page from
# its own origin, so the API gets real cross-origin calls and their preflights.
# Prints each spec, what nginx saw and `N passed, M failed`; exits 1 if any spec failed.
#
# usage: scripts/todo_spec.sh [--replicas N] [--repository GIT_DIR] [--timeout S] [--skip-missing]
#
# The suite is not part of this repository: GIT_DIR (default $TODO_SPEC_REPOSITORY, else
# /work/.mirror/TodoBackend+todo-backend-js-spec/repo) is a git directory of
# the GitHub repository TodoBackend/todo-backend-js-spec; its files are served from a temporary copy.
# --skip-missing exits 0 with a notice when GIT_DIR is not there (CI on a machine without it).
# Installs when missing: nginx and chromium (apt-get); playwright comes with .venv's dev extra
# and drives /usr/bin/chromium (it downloads no browser).
set -euo pipefail
# shellcheck source=scripts/_bootstrap.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/_bootstrap.sh"

bootstrap
missing=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
if ((${#missing[@]})); then
    _bootstrap_apt_install "${missing[@]}"
fi
export PYTHONPATH=examples/todo${PYTHONPATH:+:$PYTHONPATH}
exec .venv/bin/python -m todo_backend_spec "$@"
