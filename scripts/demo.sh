#!/usr/bin/env bash
# The main job: builds kaffe and runs `kaffe bench` with its default scenarios
# on the embedded cluster, 3 alternated rounds (best of each; about 7 minutes
# on 2 cores), then says where the table, JSON and plots are. Extra arguments
# go to `kaffe bench` (e.g. --scenario sync, --brokers host:9092, --quick,
# --rounds 1; see `kaffe bench --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh build/release -DCMAKE_BUILD_TYPE=Release -DKAFFE_BUILD_TESTS=OFF
out=bench-results
mkdir -p "$out"
status=0
build/release/kaffe bench --rounds 3 --json "$out/bench.json" --plot "$out" "$@" |
    tee "$out/table.txt" ||
    status=$?
echo
echo "table: $out/table.txt"
echo "JSON:  $out/bench.json"
for png in "$out"/*.png; do
    [ -e "$png" ] && echo "plot:  $png"
done
exit $status
