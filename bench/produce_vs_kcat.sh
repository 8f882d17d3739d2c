#!/usr/bin/env bash
# `kaffe produce` against `kcat -P` on the embedded cluster: LINES lines of
# SIZE bytes from one file, in ROUNDS alternated rounds (kcat, kaffe, kcat,
# kaffe, ...), each tool started fresh with acks=all and waiting for every
# acknowledgement before it exits. Prints every round (wall time, CPU time
# user+sys of the producing process, lines/s) and the ratio kcat time /
# kaffe time per round and of the medians (1.0: as fast as kcat; the target
# is >= 0.5).
#
# usage: bench/produce_vs_kcat.sh [KAFFE_BINARY]   (default build/release/kaffe,
#        else build/kaffe)
#        env LINES (100000), SIZE (100), ROUNDS (3), KAFFE_PRODUCE_ARGS (extra
#        arguments for kaffe produce, e.g. --sync), KCAT (kcat)
# Needs kcat (apt-get install kcat). Standalone: not part of the CMake build.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
kaffe=${1:-}
if [ -z "$kaffe" ]; then
    for candidate in "$here/build/release/kaffe" "$here/build/kaffe"; do
        [ -x "$candidate" ] && { kaffe=$candidate; break; }
    done
fi
[ -n "$kaffe" ] && [ -x "$kaffe" ] || { echo "usage: $0 KAFFE_BINARY (no build/release/kaffe)" >&2; exit 2; }
kcat=${KCAT:-kcat}
command -v "$kcat" >/dev/null || { echo "$kcat not found (apt-get install kcat)" >&2; exit 2; }
lines=${LINES:-100000}
size=${SIZE:-100}
rounds=${ROUNDS:-3}
[ "$rounds" -ge 1 ] || { echo "ROUNDS must be >= 1" >&2; exit 2; }

work=$(mktemp -d)
mock_pid=
cleanup() {
    [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null && wait "$mock_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# The input: line i is i in 8 digits, padded with 'x' to SIZE bytes.
awk -v n="$lines" -v size="$size" 'BEGIN {
    pad = ""; for (i = 8; i < size; i++) pad = pad "x";
    for (i = 0; i < n; i++) printf "%08d%s\n", i, pad }' >"$work/lines"

"$kaffe" mock --topic bench:4 >"$work/mock.out" 2>"$work/mock.err" &
mock_pid=$!
for _ in $(seq 100); do
    [ -s "$work/mock.out" ] && break
    sleep 0.1
done
bootstraps=$(head -1 "$work/mock.out")
[ -n "$bootstraps" ] || { echo "kaffe mock did not start: $(cat "$work/mock.err")" >&2; exit 1; }

# run COMMAND...: runs the command with the input on stdin; prints
# "wall cpu" in seconds (CPU = user + sys of the command, bash's `time`).
run() {
    local TIMEFORMAT='%R %U %S' rc=0
    { time "$@" <"$work/lines" >"$work/out" 2>"$work/err" || rc=$?; } 2>"$work/time"
    if [ "$rc" -ne 0 ]; then
        echo "$1 failed ($rc): $(head -5 "$work/err")" >&2
        exit 1
    fi
    awk '{ printf "%.3f %.3f\n", $1, $2 + $3 }' "$work/time"
}

echo "kaffe produce vs kcat -P: $lines lines of $size bytes, $rounds alternated rounds, embedded cluster ($bootstraps), acks=all"
echo "kaffe: $kaffe ${KAFFE_PRODUCE_ARGS:-}"
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", a / b }'; }
printf '%-6s %-6s %9s %9s %12s\n' round tool wall_s cpu_s lines/s
kcat_walls=()
kaffe_walls=()
for r in $(seq "$rounds"); do
    read -r wall cpu < <(run "$kcat" -P -b "$bootstraps" -t bench -X acks=all)
    printf '%-6s %-6s %9s %9s %12.0f\n' "$r" kcat "$wall" "$cpu" "$(div "$lines" "$wall")"
    kcat_walls+=("$wall")
    # shellcheck disable=SC2086
    read -r wall cpu < <(run "$kaffe" produce -b "$bootstraps" -t bench ${KAFFE_PRODUCE_ARGS:-})
    printf '%-6s %-6s %9s %9s %12.0f   ratio %.2f\n' "$r" kaffe "$wall" "$cpu" \
        "$(div "$lines" "$wall")" "$(div "${kcat_walls[-1]}" "$wall")"
    kaffe_walls+=("$wall")
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
mk=$(median "${kcat_walls[@]}")
mf=$(median "${kaffe_walls[@]}")
printf 'median wall: kcat %.3f s, kaffe %.3f s; ratio (kcat time / kaffe time) %.2f (target >= 0.5)\n' \
    "$mk" "$mf" "$(div "$mk" "$mf")"
