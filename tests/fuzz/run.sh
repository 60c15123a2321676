#!/bin/sh
# run.sh SECONDS [TARGET...] — builds the libFuzzer binaries with clang and fuzzes each
# target for SECONDS, one after the other (docs/fuzzing.md).
#
#   tests/fuzz/run.sh 300                      # every target, 5 minutes each
#   tests/fuzz/run.sh 60 mqtt_decode config    # two of them
#
# Targets: mqtt_decode mqtt_props config password_file acl_file ws_handshake ws_frames proxy
# (tests/fuzz/fuzz_<name>.c).
#
# - Installs clang and libclang-rt-14-dev (libFuzzer) with apt-get when they are missing.
# - Configures a separate build tree, $CX_FUZZ_BUILD or build-fuzz/ in the repository root
#   (ignored by the root .gitignore's /build*/), with CC=clang, every library compiled with
#   -fsanitize=fuzzer-no-link,address,undefined (coverage and sanitizers, CULEX_SANITIZE),
#   and only the fuzz_<name> binaries linked with -fsanitize=fuzzer. -Werror is off there:
#   clang's warnings are not the ones CI holds the code to, and this tree only exists to
#   produce fuzz binaries.
# - Runs each target once, single process (never -jobs/-workers: the machine is shared),
#   on a scratch copy of corpus/<name>/ in the build tree, so the committed corpus never
#   grows by itself; -max_len per target, -timeout=10, -rss_limit_mb=2048, the target's
#   dictionary from dict/ if there is one. A wall-clock `timeout` backs up -max_total_time.
# - Copies every crash-*, timeout-*, leak-* and oom-* artefact (crashes minimised first when
#   libFuzzer manages it) into tests/fuzz/regressions/<name>/ and then exits non-zero.
#   Review those files, fix the bug, and commit them with the fix: fuzz_replay_<name>
#   replays them in every ctest run from then on.
# - Prints, per target, the executions, executions per second, corpus size and the cov/ft
#   figures libFuzzer reached (logs in BUILD/fuzz-logs/<name>.log).
set -eu

usage() {
    echo "usage: $0 SECONDS [TARGET ...]" >&2
    echo "targets: mqtt_decode mqtt_props config password_file acl_file ws_handshake ws_frames" \
        "proxy" >&2
    exit 2
}

[ $# -ge 1 ] || usage
secs=$1
shift
case $secs in '' | *[!0-9]*) usage ;; esac
[ "$secs" -ge 1 ] || usage

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${CX_FUZZ_BUILD:-$top/build-fuzz}
all="mqtt_decode mqtt_props config password_file acl_file ws_handshake ws_frames proxy"
targets=${*:-$all}
for t in $targets; do
    case " $all " in *" $t "*) ;; *) echo "$0: unknown target '$t'" >&2; usage ;; esac
done

max_len() {
    case $1 in
    mqtt_decode) echo 2048 ;;
    mqtt_props) echo 512 ;;
    config) echo 4096 ;;
    # Each input is parsed once per chunk or prefix (quadratic in its length): keep it short.
    ws_handshake) echo 1536 ;;
    proxy) echo 1024 ;;
    *) echo 2048 ;;
    esac
}

# ---- toolchain -----------------------------------------------------------------------------
have_libfuzzer() {
    command -v clang >/dev/null 2>&1 || return 1
    # clang finds libFuzzer in its resource directory (libclang-rt-NN-dev on Debian).
    res=$(clang -print-resource-dir 2>/dev/null) || return 1
    ls "$res"/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1 ||
        ls "$res"/lib/*/libclang_rt.fuzzer.a >/dev/null 2>&1
}
if ! have_libfuzzer; then
    sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "== installing clang and libFuzzer (apt-get)"
    $sudo apt-get update
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        clang libclang-rt-14-dev
    have_libfuzzer || { echo "$0: clang or libFuzzer still missing" >&2; exit 1; }
fi

# ---- build ---------------------------------------------------------------------------------
echo "== configuring $build"
CC=clang cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCULEX_FUZZ=ON -DCULEX_WERROR=OFF -DCULEX_SANITIZE=address,undefined \
    -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link >"$build.configure.log" 2>&1 ||
    { cat "$build.configure.log" >&2; exit 1; }
mv "$build.configure.log" "$build/fuzz-configure.log"
bins=
for t in $targets; do bins="$bins fuzz_$t"; done
echo "== building$bins"
# shellcheck disable=SC2086
cmake --build "$build" -j2 --target $bins

# ---- fuzz ----------------------------------------------------------------------------------
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
logs=$build/fuzz-logs
mkdir -p "$logs"
summary=$logs/summary.txt
: >"$summary"
found=0
for t in $targets; do
    bin=$build/tests/fuzz/fuzz_$t
    work=$build/fuzz-run/$t
    rm -rf "$work"
    mkdir -p "$work/corpus" "$work/artifacts" "$work/tmp"
    # The targets' scratch files (fz_scratch_dir): a crashing input skips their atexit
    # clean-up, so keep them here rather than in /tmp.
    export TMPDIR="$work/tmp"
    cp "$here/corpus/$t/"* "$work/corpus/"
    seeds=$(ls "$work/corpus" | wc -l)
    dict=
    [ -f "$here/dict/$t.dict" ] && dict=-dict=$here/dict/$t.dict
    log=$logs/$t.log
    echo "== fuzzing $t for ${secs}s ($seeds seeds, -max_len=$(max_len "$t"))"
    rc=0
    start=$(date +%s)
    # The corpus directory comes first: new inputs go there, never into tests/fuzz/corpus.
    # shellcheck disable=SC2086
    timeout -k 10 $((secs + 120)) "$bin" -max_total_time="$secs" -max_len="$(max_len "$t")" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/" $dict "$work/corpus" >"$log" 2>&1 || rc=$?
    ran=$(($(date +%s) - start))
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$last" | sed -n 's/.*corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p')
    line=$(printf '%-14s ran %4ss  execs %-10s exec/s %-7s cov %-6s ft %-6s corp %-12s rss %sMB rc %s' \
        "$t" "$ran" "${execs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" \
        "${rss:-?}" "$rc")
    echo "$line" | tee -a "$summary"

    arts=$(ls "$work/artifacts" 2>/dev/null | grep -E '^(crash|timeout|leak|oom)-' || true)
    if [ -n "$arts" ]; then
        found=1
        dest=$here/regressions/$t
        mkdir -p "$dest"
        for a in $arts; do
            src=$work/artifacts/$a
            case $a in
            crash-*)
                # Smaller reproducers make better regression files; keep the original when
                # libFuzzer cannot shrink it.
                "$bin" -minimize_crash=1 -max_total_time=60 -timeout=10 -rss_limit_mb=2048 \
                    -exact_artifact_path="$work/$a.min" "$src" >"$logs/$t-$a.min.log" 2>&1 || true
                [ -s "$work/$a.min" ] && src=$work/$a.min
                ;;
            esac
            cp "$src" "$dest/$a"
            echo "   artefact: tests/fuzz/regressions/$t/$a (log: $log)"
        done
    elif [ "$rc" -ne 0 ]; then
        found=1
        echo "   $t exited with $rc and left no artefact: see $log"
    fi
    rm -rf "$work/tmp"
done

echo "== summary (also in $summary)"
cat "$summary"
if [ "$found" -ne 0 ]; then
    echo "$0: fuzzing found problems; inputs copied into tests/fuzz/regressions/" >&2
    exit 1
fi
