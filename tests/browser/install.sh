#!/bin/sh
# Installs what tests/browser/run.js needs: Debian's chromium (apt, as root) and the npm
# packages pinned in package-lock.json (MQTT.js and playwright-core; playwright-core does not
# download a browser of its own). Safe to run again.
set -eu
cd "$(dirname "$0")"
if ! command -v chromium >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends chromium nodejs npm
fi
npm ci --no-audit --no-fund
