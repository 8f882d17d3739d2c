#!/usr/bin/env bash
# tests/broker/bench_peers_quick.sh BUILD_DIR: runs scripts/bench-peers.sh in
# its --quick mode against the broker tier's broker (KAFFE_BROKER_ENV), so the
# peer harness (bench/peers, bench/bench_peer.c, bench/peers/run.py) cannot
# rot, and checks peers.json with Python's JSON parser: every contender of
# every workload ran, handled its data set, and has a positive rate, CPU time
# and peak RSS.
set -euo pipefail
build=$(cd "$1" && pwd)
cd "$(dirname "$0")/../.."
[ -n "${KAFFE_BROKER_ENV:-}" ] || { echo "KAFFE_BROKER_ENV is not set (scripts/test.sh broker sets it)" >&2; exit 1; }
brokers=$(sed -n 's/^KAFFE_BROKER_PLAINTEXT=//p' "$KAFFE_BROKER_ENV")
out="$build/peers-quick"
rm -rf "$out"
bash scripts/bench-peers.sh --quick --build-dir "$build" --brokers "$brokers" --out "$out"
python3 - "$out/peers.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
rows = doc["rows"]
want = {("W0", "raw"), ("W0", "java-raw"), ("W0", "kaffe-sync-partition"), ("W0", "kaffe-sync-key"),
        ("W0", "kaffe-sync-unordered"), ("W0", "pc-unordered"), ("W1", "kaffe-sync-key"),
        ("W1", "pc-unordered"), ("W2", "kaffe-async-ack-now"), ("W2", "kaffe-async-ack-0-10ms"),
        ("W3-1k", "kaffe-sync-partition"), ("W3-16k", "java-raw")}
have = {(r["workload"], r["contender"]) for r in rows}
missing = want - have
assert not missing, f"missing rows: {sorted(missing)}"
assert doc["failures"] == 0, f"{doc['failures']} runs failed"
for r in rows:
    assert r["ok"], f"{r['workload']} {r['contender']} failed"
    assert r["best"] > 0 and r["cpu_s_median"] > 0 and r["peak_rss_mb"] > 0, r
    if "best_vs_best_raw" in r:
        assert r["best_vs_best_raw"] > 0, r
print(f"peers.json: {len(rows)} rows, every contender ran")
PY
