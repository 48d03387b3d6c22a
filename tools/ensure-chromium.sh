#!/bin/sh
# Make sure a Chromium is at hand for the GraphiQL browser tests (`make test` runs this).
#
#   sh tools/ensure-chromium.sh
#
# The tests drive Debian's `chromium` through Playwright for Python (a test dependency, from
# PyPI), pointed at /usr/bin/chromium: Playwright's own `playwright install` downloads a
# browser build from outside the package registries, which the machines here cannot reach.
set -eu

if command -v chromium >/dev/null 2>&1; then exit 0; fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: installing Debian's chromium"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; then
        # A fresh machine may have no package lists yet.
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
    command -v chromium >/dev/null 2>&1 && exit 0
fi
echo "ensure-chromium: no chromium could be installed (Debian's chromium package, as root)" >&2
exit 1
