#!/usr/bin/env bash
# scripts/kafka/jars.sh: prints the directory holding the Apache Kafka jars
# of pom.xml (kafka_2.13 and its runtime dependencies), resolving them from
# Maven Central into ${KAFFE_CACHE:-~/.cache/kaffe} on first use (~100 MB),
# once per pom.xml version. Used by start.sh and cluster.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${KAFFE_CACHE:-$HOME/.cache/kaffe}
pom_hash=$(sha256sum "$here/pom.xml" | cut -c1-12)
jars=$cache/kafka-jars-$pom_hash
if [ ! -f "$jars/.complete" ]; then
    command -v mvn >/dev/null || { echo "kafka: ERROR: mvn not found (apt-get install maven, or scripts/setup.sh --broker)" >&2; exit 1; }
    echo "kafka: resolving Kafka jars from Maven Central into $jars (first run only)" >&2
    rm -rf "$jars"
    mkdir -p "$jars" "$cache/m2"
    mvn -q -B -f "$here/pom.xml" -Dmaven.repo.local="$cache/m2" -Djars.dir="$jars" \
        dependency:copy-dependencies >&2 || { echo "kafka: ERROR: mvn dependency:copy-dependencies failed" >&2; exit 1; }
    ls "$jars"/kafka_2.13-*.jar >/dev/null 2>&1 || { echo "kafka: ERROR: no kafka_2.13 jar in $jars" >&2; exit 1; }
    touch "$jars/.complete"
fi
echo "$jars"
