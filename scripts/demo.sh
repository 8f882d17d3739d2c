#!/usr/bin/env bash
# The main job: builds kaffe and runs its benchmarks on the embedded cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh build/release -DCMAKE_BUILD_TYPE=Release -DKAFFE_BUILD_TESTS=OFF
for b in build/release/bench/bench_*; do
    [ -x "$b" ] || continue
    echo "== $(basename "$b")"
    "$b"
done
