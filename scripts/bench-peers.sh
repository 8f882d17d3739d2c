#!/usr/bin/env bash
# scripts/bench-peers.sh [--quick] [--scaling] [--rounds N] [--out DIR]
#                        [--brokers LIST] [--build-dir DIR]
#
# kaffe against the peers a user would pick instead, on a real Apache Kafka
# broker (docs/BENCHMARKS.md, "Peers on a real broker"): the kaffe consumer
# (bench/bench_peer.c, the public API), a raw librdkafka poll loop (the
# baseline every ratio is against), Confluent Parallel Consumer 0.5.3.3 and a
# plain Java KafkaConsumer loop (bench/peers, built with Maven and cached in
# ~/.cache/kaffe). Workloads W0 (no-op, 16 partitions), W1 (1 ms handler, 64
# workers, every ordering), W2 (async acks from application threads), W3
# (1 KiB and 16 KiB values); every contender in its own process and group,
# the order alternated over the rounds (default 3). Prints the table and
# writes peers.md, peers.json and peers.png into --out (default
# bench-results/peers).
#
# --scaling: instead, kaffe's scaling curves on the same broker: throughput,
# CPU per message and peak RSS versus partitions (1 .. 4096), workers
# (1 .. 256) and the in-flight window; scaling.md, scaling.json, scaling.png.
#
# Without --brokers it starts the single-node broker of scripts/kafka and
# stops it afterwards. --build-dir uses an already built kaffe (default:
# builds build/release). --quick: small data sets, one round, and only the
# Parallel Consumer ordering UNORDERED (what the CI test runs).
set -euo pipefail
cd "$(dirname "$0")/.."
quick=""
scaling=""
rounds=3
out=bench-results/peers
brokers=""
build=""
while [ $# -gt 0 ]; do
    case $1 in
        --quick) quick=--quick; rounds=1 ;;
        --scaling) scaling=--scaling ;;
        --rounds) rounds=$2; shift ;;
        --out) out=$2; shift ;;
        --brokers) brokers=$2; shift ;;
        --build-dir) build=$2; shift ;;
        -h | --help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "bench-peers: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

missing=()
for tool in java mvn python3 cmake ninja; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench-peers: missing: ${missing[*]} (bash scripts/setup.sh --broker installs them)" >&2
    exit 1
fi

if [ -z "$build" ]; then
    build=build/release
    echo "bench-peers: building kaffe in $build" >&2
    bash scripts/build.sh "$build" -DCMAKE_BUILD_TYPE=Release -DKAFFE_BUILD_TESTS=OFF
fi
[ -x "$build/bench/bench_peer" ] || { echo "bench-peers: no $build/bench/bench_peer" >&2; exit 1; }

# The JVM peers: compiled once per pom.xml and source.
cache=${KAFFE_CACHE:-$HOME/.cache/kaffe}
hash=$(cat bench/peers/pom.xml bench/peers/src/main/java/kaffe/peers/*.java | sha256sum | cut -c1-12)
peers=$cache/peers-$hash
if [ ! -f "$peers/.complete" ]; then
    echo "bench-peers: building the JVM peers into $peers (Maven Central, first run only)" >&2
    rm -rf "$peers"
    mkdir -p "$peers" "$cache/m2"
    mvn -q -B -f bench/peers/pom.xml -Dmaven.repo.local="$cache/m2" -Dpeers.build.dir="$peers" \
        package >&2 || { echo "bench-peers: mvn package failed" >&2; exit 1; }
    touch "$peers/.complete"
fi
java_cp="$peers/kaffe-peers-1.jar:$peers/lib/*"

broker_env=""
stop_broker() {
    if [ -n "$broker_env" ]; then
        bash scripts/kafka/stop.sh "$broker_env" >/dev/null 2>&1 || true
    fi
}
trap stop_broker EXIT
if [ -z "$brokers" ]; then
    echo "bench-peers: starting Apache Kafka (scripts/kafka/start.sh)" >&2
    broker_env=$(bash scripts/kafka/start.sh | tail -1)
    brokers=$(sed -n 's/^KAFFE_BROKER_PLAINTEXT=//p' "$broker_env")
fi

python3 bench/peers/run.py --brokers "$brokers" --bench-peer "$build/bench/bench_peer" \
    --java-cp "$java_cp" --rounds "$rounds" --out "$out" $quick $scaling
