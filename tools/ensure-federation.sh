#!/bin/sh
# Make sure the federation test's npm packages are installed (`make test` runs this; the test
# runs it too when they are missing).
#
#   sh tools/ensure-federation.sh
#
# tests/federation composes deltagate into a supergraph with a real Apollo Federation gateway
# (tools/federation: @apollo/gateway, @apollo/composition, @apollo/server, @apollo/subgraph),
# at the exact versions of the committed package-lock.json, from the npm registry, without
# install scripts. Again only when the lock file changed since the last install. Without node
# on PATH there is nothing to install, and the test is skipped, saying so.
set -eu

cd "$(dirname "$0")/federation"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "ensure-federation: no node/npm on PATH; tests/federation will be skipped" >&2
    exit 0
fi
if [ -f node_modules/.deltagate-lock ] && cmp -s package-lock.json node_modules/.deltagate-lock; then
    exit 0
fi
echo "ensure-federation: npm ci in tools/federation"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
cp package-lock.json node_modules/.deltagate-lock
