#!/usr/bin/env bash
# scripts/build.sh DIR [cmake options...]: configures and builds kaffe into DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1
shift
werror=OFF
[ "${CI:-}" = "true" ] && werror=ON
mkdir -p "$(dirname "$dir")"
cmake -S . -B "$dir" -G Ninja -DKAFFE_WERROR=$werror "$@" >"$dir.configure.log" 2>&1 ||
    { cat "$dir.configure.log" >&2; exit 1; }
ninja -C "$dir" >"$dir.build.log" 2>&1 || { tail -50 "$dir.build.log" >&2; exit 1; }
