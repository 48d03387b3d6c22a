#!/bin/sh
# Make sure a redis-server is at hand for the rate-limit store's tests (`make test` runs this).
#
#   sh tools/ensure-redis.sh
#
# The tests start their own redis-server on a free loopback port, without persistence, and stop
# it when the run ends; they need only the binary. Run as root, this installs Debian's
# `redis-server` package when none is on PATH (the package's own service is not used: it is
# stopped if the install started it). Without root or apt-get it says what is missing, and the
# tests that need Redis fail with the same message.
set -eu

if command -v redis-server >/dev/null 2>&1; then exit 0; fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-redis: no redis-server on PATH; install Debian's redis-server package" >&2
    exit 1
fi

candidate=$(apt-cache policy redis-server 2>/dev/null | awk '/Candidate:/ {print $2}')
if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
    echo "ensure-redis: refreshing the package lists"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
fi
echo "ensure-redis: installing Debian's redis-server"
# Wait for the dpkg lock (another install may be running); the package may start its own
# service, which the tests never use.
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq redis-server >/dev/null
if command -v service >/dev/null 2>&1; then service redis-server stop >/dev/null 2>&1 || true; fi
command -v redis-server >/dev/null 2>&1 || {
    echo "ensure-redis: redis-server could not be installed" >&2
    exit 1
}
