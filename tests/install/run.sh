#!/usr/bin/env bash
# Installs kaffe from BUILD_DIR into a private prefix with the commands
# docs/GETTING_STARTED.md gives, then builds and runs a tiny outside project
# against it twice: with pkg-config (those commands) and with
# find_package(kaffe CONFIG). Usage: run.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
expect="kaffe $(sed -n 's/^project(kaffe VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")"

# 1. pkg-config into a private prefix, with the commands of
# docs/GETTING_STARTED.md ("Install and link"): the ```sh block after the
# marker comment runs as it is, with HOME pointing into the work directory,
# app.c the outside project's main.c and build the build directory. The
# program must start without LD_LIBRARY_PATH (the documented -Wl,-rpath).
block=$(awk '/tests\/install\/run.sh runs the block below/ { armed = 1; next }
             armed && /^```sh/ { inside = 1; next }
             inside && /^```/ { exit }
             inside { print }' "$src/docs/GETTING_STARTED.md")
[ -n "$block" ] || { echo "docs/GETTING_STARTED.md: the private-prefix install block is missing"; exit 1; }
mkdir -p "$work/user"
cp "$src/tests/install/outside/main.c" "$work/user/app.c"
ln -s "$(cd "$build" && pwd)" "$work/user/build"
out=$(cd "$work/user" && env -u LD_LIBRARY_PATH -u PKG_CONFIG_PATH HOME="$work/home" \
    bash -euo pipefail -c "$block" | tail -1) # the last line is ./app's
echo "pkg-config (documented commands): $out"
[[ $out == "$expect "* ]] || { echo "unexpected output (want $expect ...)"; exit 1; }

# 2. The shared library exports the public API only (hidden visibility).
leaked=$(nm -D --defined-only "$work"/home/opt/kaffe/lib*/libkaffe.so* 2>/dev/null | awk '$2 ~ /[TDB]/ {print $3}' | grep -v '^kaffe_' || true)
[ -z "$leaked" ] || { echo "non-kaffe_ symbols exported: $leaked"; exit 1; }

# 3. find_package(kaffe CONFIG REQUIRED).
cmake -S "$src/tests/install/outside" -B "$work/outside-build" -DCMAKE_PREFIX_PATH="$work/home/opt/kaffe" >/dev/null
cmake --build "$work/outside-build" >/dev/null
out=$("$work/outside-build/outside")
echo "find_package: $out"
[[ $out == "$expect "* ]] || { echo "unexpected output (want $expect ...)"; exit 1; }
echo "install: 3 passed, 0 failed"
