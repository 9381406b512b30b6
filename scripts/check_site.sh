#!/usr/bin/env bash
# The docs site as a reader's browser shows it: serves the built site on a local port and
# opens every page in Debian's Chromium (driven by Playwright, as scripts/todo_spec.sh
# does). A page passes with no console error, every mermaid diagram rendered to an SVG,
# and every link and image inside the site resolving (anchors included). Writes a
# screenshot of the home page to site-check/home.png. Exits 1 if any page has a problem.
#
# usage: scripts/check_site.sh [SITE_DIR]
#
# SITE_DIR is what `mkdocs build` wrote (scripts/test.sh passes its strict build); without
# it the site is built first, strictly, into a temporary directory.
# Installs when missing: chromium (apt-get), and mermaid.min.js from the npm registry
# (kept in .venv/share/scalepy-docs/, of the major version the theme asks for):
# mkdocs-material loads mermaid from a CDN, which this machine cannot reach, so the browser
# gets that copy instead.
set -euo pipefail
# shellcheck source=scripts/_bootstrap.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/_bootstrap.sh"

_bootstrap_venv # the site needs no service
[[ -x /usr/bin/chromium ]] || _bootstrap_apt_install chromium

site=${1:-}
if [[ -z $site ]]; then
    site=$(mktemp -d "${TMPDIR:-/tmp}/scalepy-site.XXXXXX")
    trap 'rm -rf -- "$site"' EXIT
    NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$site"
fi

# The mermaid major version the theme's script asks the CDN for (mermaid@11/...).
urls=$(grep -rhoE 'unpkg\.com/mermaid@[0-9]+' "$site"/assets/javascripts/) \
    || die "no mermaid URL in $site/assets/javascripts: is it a site mkdocs-material built?"
mermaid_major=${urls%%$'\n'*} # the first one
mermaid_major=${mermaid_major##*@}
mermaid=.venv/share/scalepy-docs/mermaid-$mermaid_major.min.js
if [[ ! -s $mermaid ]]; then
    command -v npm >/dev/null || _bootstrap_apt_install npm
    say "fetching mermaid@$mermaid_major from the npm registry"
    download=$(mktemp -d "${TMPDIR:-/tmp}/scalepy-mermaid.XXXXXX")
    (cd "$download" && npm pack --silent "mermaid@$mermaid_major" >/dev/null)
    tar -xzf "$download"/mermaid-*.tgz -C "$download" package/dist/mermaid.min.js
    mkdir -p "$(dirname -- "$mermaid")"
    mv "$download/package/dist/mermaid.min.js" "$mermaid"
    rm -rf -- "$download"
fi

.venv/bin/python -m tests.support.docs_site "$site" --mermaid "$mermaid" \
    --screenshot site-check/home.png
