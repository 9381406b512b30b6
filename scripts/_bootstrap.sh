# shellcheck shell=bash
# Shared setup for scripts/test.sh and scripts/demo.sh. Source it; do not run it.
#
# Sourcing it moves to the repository root and defines:
#   bootstrap   ensure Python >= 3.11 with venv, create .venv if missing, install
#               scalepy-toolkit[all,dev,bench] (import name scalepy) and the Todo example (examples/todo, package `todo`)
#               into it (editable; skipped when neither pyproject.toml has changed since
#               the last install), start the local services and export
#               the SCALEPY_TEST_* variables (defaults below, kept when already set).
#   say, die    progress and error lines prefixed with the calling script's name.
#   _bootstrap_apt_install PKG...
#               install Debian packages with apt-get (as root, or through sudo); demo.sh
#               installs nginx with it.
#
# Environment:
#   PYTHON                  interpreter used to create .venv (default: python3)
#   SCALEPY_SKIP_SERVICES   set to 1 to skip scripts/services.sh (own servers via the URLs)

SCALEPY_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$SCALEPY_ROOT" || exit 1

say() { printf '%s: %s\n' "${0##*/}" "$*"; }
die() {
    printf '%s: error: %s\n' "${0##*/}" "$*" >&2
    exit 1
}

_bootstrap_apt_install() {
    command -v apt-get >/dev/null || die "$* missing and apt-get is not available: install by hand"
    local sudo=()
    if [[ $EUID -ne 0 ]]; then
        command -v sudo >/dev/null || die "root (or sudo) is needed to install $*"
        sudo=(sudo)
    fi
    say "installing $* with apt-get"
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# nginx lives in /usr/sbin, which a non-root PATH may lack.
_bootstrap_has_nginx() {
    command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]]
}

_bootstrap_check_python() {
    local py=$1
    if ! command -v "$py" >/dev/null; then
        _bootstrap_apt_install python3 python3-venv
    fi
    "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "scalepy needs Python >= 3.11 but $py is $("$py" -V 2>&1); set PYTHON to a newer one"
}

_bootstrap_venv() {
    if ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        local py=${PYTHON:-python3}
        _bootstrap_check_python "$py"
        say "creating .venv with $("$py" -V 2>&1)"
        rm -rf .venv
        if ! "$py" -m venv .venv >/dev/null 2>&1; then
            # Debian ships venv's ensurepip separately, in python3-venv.
            rm -rf .venv
            _bootstrap_apt_install python3-venv
            "$py" -m venv .venv
        fi
    fi
    # The installs are editable, so only a change to a pyproject.toml needs a new one.
    local stamp
    stamp="$(cat pyproject.toml examples/todo/pyproject.toml | sha256sum | cut -d' ' -f1) $(.venv/bin/python -V 2>&1)"
    if [[ $(cat .venv/.scalepy-install 2>/dev/null) != "$stamp" ]] \
        || ! .venv/bin/python -c 'import importlib.util as u; assert u.find_spec("scalepy") and u.find_spec("todo")' 2>/dev/null; then
        say "installing scalepy-toolkit[all,dev,bench] and the Todo example into .venv"
        # One command: the example depends on scalepy-toolkit, which pip must take from
        # this checkout (the one being tested), never from the package index.
        # A distribution named `scalepy` is this checkout under its old name, or the
        # unrelated PyPI project, which installs a package `scalepy` too: either goes.
        .venv/bin/python -m pip uninstall --quiet --yes scalepy 2>/dev/null || true
        .venv/bin/python -m pip install --quiet --disable-pip-version-check \
            -e '.[all,dev,bench]' -e ./examples/todo
        printf '%s\n' "$stamp" >.venv/.scalepy-install
    fi
}

bootstrap() {
    _bootstrap_venv
    if [[ ${SCALEPY_SKIP_SERVICES:-0} != 1 ]]; then
        bash scripts/services.sh start
    fi
    export SCALEPY_TEST_REDIS_URL=${SCALEPY_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
    export SCALEPY_TEST_CLUSTER_URL=${SCALEPY_TEST_CLUSTER_URL:-redis+cluster://127.0.0.1:7000}
    export SCALEPY_TEST_POSTGRES_DSN=${SCALEPY_TEST_POSTGRES_DSN:-postgresql://postgres@127.0.0.1:5432/test}
}
