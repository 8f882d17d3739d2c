#!/usr/bin/env bash
# scripts/kafka/jars.sh: prints the directory holding the Apache Kafka jars
# (kafka_2.13 and its runtime dependencies) of the version
# KAFFE_KAFKA_VERSION selects, resolving them from Maven Central into
# ${KAFFE_CACHE:-~/.cache/kaffe} on first use (~50-100 MB), once per pom
# content. Used by start.sh and cluster.sh.
#
#   KAFFE_KAFKA_VERSION=3.9.1 (default)  pom.xml
#   KAFFE_KAFKA_VERSION=4.1.1            pom-4.xml
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${KAFFE_CACHE:-$HOME/.cache/kaffe}
case "${KAFFE_KAFKA_VERSION:-3.9.1}" in
    3.9.1) pom=$here/pom.xml ;;
    4.1.1) pom=$here/pom-4.xml ;;
    *) echo "kafka: ERROR: KAFFE_KAFKA_VERSION=$KAFFE_KAFKA_VERSION is not one of 3.9.1, 4.1.1" >&2; exit 1 ;;
esac
pom_hash=$(sha256sum "$pom" | cut -c1-12)
jars=$cache/kafka-jars-$pom_hash
if [ ! -f "$jars/.complete" ]; then
    command -v mvn >/dev/null || { echo "kafka: ERROR: mvn not found (apt-get install maven, or scripts/setup.sh --broker)" >&2; exit 1; }
    echo "kafka: resolving Kafka ${KAFFE_KAFKA_VERSION:-3.9.1} jars from Maven Central into $jars (first run only)" >&2
    rm -rf "$jars"
    mkdir -p "$jars" "$cache/m2"
    mvn -q -B -f "$pom" -Dmaven.repo.local="$cache/m2" -Djars.dir="$jars" \
        dependency:copy-dependencies >&2 || { echo "kafka: ERROR: mvn dependency:copy-dependencies failed" >&2; exit 1; }
    ls "$jars"/kafka_2.13-*.jar >/dev/null 2>&1 || { echo "kafka: ERROR: no kafka_2.13 jar in $jars" >&2; exit 1; }
    touch "$jars/.complete"
fi
echo "$jars"
