#!/usr/bin/env bash
# scripts/kafka/stop.sh ENV_FILE: stops the broker scripts/kafka/start.sh
# started (by the PID it recorded, never by name) and removes its directory.
# Safe to call twice or after the broker died.
set -uo pipefail
env_file=${1:?usage: stop.sh ENV_FILE}
[ -f "$env_file" ] || exit 0
dir=$(sed -n 's/^KAFFE_BROKER_DIR=//p' "$env_file")
pid=$(sed -n 's/^KAFFE_BROKER_PID=//p' "$env_file")
case "$dir" in
    "${TMPDIR:-/tmp}"/kaffe-kafka.*) ;;
    *) echo "kafka: refusing to remove unexpected directory '$dir'" >&2; exit 1 ;;
esac
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 100); do # up to 10 s for a clean shutdown
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "kafka: pid $pid did not stop in 10s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null
    fi
fi
rm -rf "$dir"
