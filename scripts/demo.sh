#!/usr/bin/env bash
# The project's main job: the Todo API (examples/todo) on this machine, no Docker needed.
# Sets up .venv and the local services (scripts/services.sh), installs nginx when it is
# missing, migrates the database, starts N replicas (uvicorn on Unix sockets) behind a real
# nginx (least_conn, started unprivileged from a temporary prefix) and one worker, runs a
# scripted tour against nginx that shows each scalepy primitive at work, prints a summary and
# stops everything it started (also on Ctrl-C or when a step fails).
#
# usage: scripts/demo.sh [--replicas N] [--port PORT] [--single | --prometheus]
#                        [--serve | --check | --rolling-restart]
#
#   --replicas N   app replicas behind nginx (default 3)
#   --port PORT    the port nginx listens on, on 127.0.0.1 (default 8080; 0: any free port)
#   --single       one process with TODO_REDIS_URL=memory:// (no Redis, no nginx) on PORT
#   --prometheus   also run Prometheus (Debian package, installed when missing) scraping each
#                  replica and the worker every second, with the alert rules of
#                  examples/todo/deploy/observability/alerts.yml (--serve prints its URLs)
#   --serve        start the stack, print its URLs and a token, keep it up until Ctrl-C
#   --check        CI: the tour with a one-line-per-step summary; exit 1 if any step fails
#   --rolling-restart
#                  replace every replica, one at a time (drain, out of nginx, SIGTERM, start,
#                  back in), while 20 clients read and write; exit 1 if any request failed
#   -h, --help     this text
#
# Environment (all optional):
#   TODO_DATABASE_URL   the PostgreSQL database (default postgresql://postgres@127.0.0.1:5432/todo_demo)
#   TODO_REDIS_URL      the Redis the replicas share (default redis://127.0.0.1:6379/0)
#   and the variables of scripts/_bootstrap.sh (PYTHON, SCALEPY_SKIP_SERVICES).
set -euo pipefail
# shellcheck source=scripts/_bootstrap.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/_bootstrap.sh"

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

# Check the arguments before the (slow, first time) bootstrap; the demo parses them again.
single=0
prometheus=0
args=("$@")
while (($#)); do
    case $1 in
        -h | --help)
            usage
            exit 0
            ;;
        --replicas | --port)
            [[ ${2:-} =~ ^[0-9]+$ ]] || die "$1 needs a number (see --help)"
            shift
            ;;
        --single) single=1 ;;
        --prometheus) prometheus=1 ;;
        --serve | --check | --rolling-restart) ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
((single && prometheus)) && die "--prometheus scrapes the replicas: not with --single"

bootstrap
if ((!single)) && ! _bootstrap_has_nginx; then
    _bootstrap_apt_install nginx
fi
if ((prometheus)) && ! command -v prometheus >/dev/null; then
    _bootstrap_apt_install prometheus
fi
export PYTHONPATH=examples/todo${PYTHONPATH:+:$PYTHONPATH}
exec .venv/bin/python -m demo "${args[@]}"
