#!/bin/sh
# Soak run: a broker under steady mixed load for SECONDS (default 600), its memory sampled
# into memory.csv; fails if memory grows after the warm-up, if an acknowledged QoS 1/2
# message is lost, or if the broker does not exit cleanly. See soak.py for the details.
#
#   tests/soak/run.sh [SECONDS]
#
# Environment: CULEX_SOAK_BROKER (the culex binary; default build/core/culex),
# CULEX_SOAK_WORKERS, CULEX_SOAK_SAMPLE (seconds between samples), CULEX_SOAK_DIR (where
# broker.conf, broker.log, memory.csv and summary.txt go; default a new /tmp/culex-soak-*).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
secs=${1:-600}
dir=${CULEX_SOAK_DIR:-$(mktemp -d /tmp/culex-soak-XXXXXX)}
exec /usr/bin/python3 "$here/soak.py" "$secs" "$dir"
