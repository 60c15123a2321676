#!/bin/sh
# Run the whole integration suite against Debian's Eclipse Mosquitto 2.0.11, to validate
# the tests themselves: everything must pass, except tests marked culex_only (skipped) and
# mosquitto_departs (expected failures, see MOSQUITTO_DEPARTURES.md).
#
#   tests/integration/run_against_mosquitto.sh [unittest args, e.g. -k will]
#
# MOSQUITTO=/path/to/mosquitto overrides the binary. CULEX_TEST_STRICT=1 runs the
# departure tests as ordinary tests, to see how mosquitto fails them.
cd "$(dirname "$0")" || exit 1
CULEX_TEST_BROKER=${MOSQUITTO:-/usr/sbin/mosquitto}
CULEX_TEST_KIND=mosquitto
CULEX_TEST_WORKERS=1
export CULEX_TEST_BROKER CULEX_TEST_KIND CULEX_TEST_WORKERS
exec /usr/bin/python3 -m unittest discover -v -s . -p 'test_*.py' "$@"
