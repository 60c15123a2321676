#!/bin/sh
# corpus_check.sh: loads every file of the real-world mosquitto.conf corpus with culex's
# config reader and prints, per file, "ok" or the errors. Run by hand (not in ctest: the
# corpus lives outside the repository):
#
#   tests/unit/config/corpus_check.sh [BUILD_DIR] [CORPUS_DIR]
#
# BUILD_DIR defaults to build/, CORPUS_DIR to /work/shared/configs/corpus. Like the corpus
# runner, each file's include_dir is pointed at its companion folder NNN-name.files/<name>/
# (or an empty folder), keeping line numbers; nothing else is rewritten, since the config
# reader opens no other file.
set -eu

build=${1:-build}
corpus=${2:-/work/shared/configs/corpus}
tool="$build/core/cx_confdoc"
[ -x "$tool" ] || { echo "no $tool: build the cx_confdoc target first" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok=0
total=0
for f in "$corpus"/*.conf; do
    id=$(basename "$f" .conf)
    work="$tmp/$id"
    mkdir -p "$work/inc"
    # Rewrite include_dir lines only (the directory's last path component picks the
    # companion folder); every other byte stays as found.
    awk -v inc="$work/inc" '
        /^[ \t]*include_dir[ \t]/ {
            line = $0; sub(/\r$/, "", line)
            sub(/^[ \t]*include_dir[ \t]+/, "", line); sub(/[ \t]+$/, "", line)
            sub(/\/+$/, "", line); n = split(line, parts, "/")
            print "include_dir " inc "/" parts[n]
            print parts[n] > (inc "/.names")
            next
        }
        { print }' "$f" > "$work/$id.conf"
    if [ -f "$work/inc/.names" ]; then
        while IFS= read -r name; do
            mkdir -p "$work/inc/$name"
            if [ -d "$corpus/$id.files/$name" ]; then
                cp -R "$corpus/$id.files/$name/." "$work/inc/$name/"
            fi
        done < "$work/inc/.names"
        rm -f "$work/inc/.names"
    fi
    total=$((total + 1))
    out=$("$tool" --load "$work/$id.conf" 2>/dev/null || true)
    out=$(printf '%s\n' "$out" | sed "s#$work/inc/#<include_dir>/#g; s#$work/##g")
    case "$out" in
    *": ok"*) ok=$((ok + 1)); echo "$id: ok" ;;
    *) printf '%s\n' "$out" | sed "1s/\.conf: FAILED\$/: refused/" ;;
    esac
done
echo "$ok of $total files load"
