#!/usr/bin/env bash
# Installs kaffe from BUILD_DIR into a temporary prefix, then builds and runs a
# tiny outside project against it twice: with pkg-config and with
# find_package(kaffe CONFIG). Usage: run.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
expect="kaffe $(sed -n 's/^project(kaffe VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")"

# 0. The shared library exports the public API only (hidden visibility).
leaked=$(nm -D --defined-only "$work"/prefix/lib*/libkaffe.so* 2>/dev/null | awk '$2 ~ /[TDB]/ {print $3}' | grep -v '^kaffe_' || true)
[ -z "$leaked" ] || { echo "non-kaffe_ symbols exported: $leaked"; exit 1; }

# 1. pkg-config, as a Makefile user would.
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig:$work/prefix/lib/x86_64-linux-gnu/pkgconfig"
cc -o "$work/outside-pc" "$src/tests/install/outside/main.c" $(pkg-config --cflags --libs kaffe)
out=$(LD_LIBRARY_PATH="$(pkg-config --variable=libdir kaffe)" "$work/outside-pc")
echo "pkg-config: $out"
[[ $out == "$expect "* ]] || { echo "unexpected output (want $expect ...)"; exit 1; }

# 2. find_package(kaffe CONFIG REQUIRED).
cmake -S "$src/tests/install/outside" -B "$work/outside-build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/outside-build" >/dev/null
out=$("$work/outside-build/outside")
echo "find_package: $out"
[[ $out == "$expect "* ]] || { echo "unexpected output (want $expect ...)"; exit 1; }
echo "install: 3 passed, 0 failed"
