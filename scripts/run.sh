#!/bin/sh
# Quick start: installs what is needed, builds, and starts culex in the foreground on
# localhost:1883 with the built-in default configuration (anonymous clients, loopback only).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/install-deps.sh"
"$top/scripts/build.sh" "$top/build"
exec "$top/build/core/culex" "$@"
