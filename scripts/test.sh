#!/bin/sh
# Installs what is needed, builds culex twice (plain, and with AddressSanitizer and
# UndefinedBehaviorSanitizer) and runs the whole ctest suite on both builds.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/install-deps.sh" --test
# The browser test's own parts: Debian's chromium and the pinned npm packages (MQTT.js,
# playwright-core).
"$top/tests/browser/install.sh"
jobs=$(nproc)

"$top/scripts/build.sh" "$top/build"
(cd "$top/build" && ctest --output-on-failure -j"$jobs" --timeout 600)

"$top/scripts/build.sh" "$top/build-asan" -DCMAKE_BUILD_TYPE=Debug \
    -DCULEX_SANITIZE=address,undefined
(cd "$top/build-asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure -j"$jobs" --timeout 900)
