#!/usr/bin/env bash
# Builds kaffe and runs every test: the plain build, then AddressSanitizer +
# UndefinedBehaviorSanitizer, then ThreadSanitizer. Installs what it needs.
# Under ThreadSanitizer only the race tier runs (tests/race): Criterion cannot
# start under TSan (see tests/support/check.h).
#
#   scripts/test.sh            all of the above
#   scripts/test.sh quick      the plain build only
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

mode=${1:-all}
jobs=$(nproc)
failed=0

run_suite() { # name build-dir ctest-args...
    local name=$1 dir=$2
    shift 2
    echo "== $name: building in $dir"
    bash scripts/build.sh "$dir" "${BUILD_ARGS[@]}"
    echo "== $name: testing"
    if ! (cd "$dir" && ctest --output-on-failure --no-tests=error -j "$jobs" "$@"); then
        failed=1
    fi
}

BUILD_ARGS=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
run_suite plain build/test -LE broker

if [ "$mode" = all ]; then
    BUILD_ARGS=(-DCMAKE_BUILD_TYPE=Debug -DKAFFE_SANITIZE=address,undefined -DKAFFE_BUILD_BENCH=OFF)
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        run_suite asan+ubsan build/asan -LE broker

    BUILD_ARGS=(-DCMAKE_BUILD_TYPE=Debug -DKAFFE_SANITIZE=thread -DKAFFE_BUILD_BENCH=OFF)
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp" \
        run_suite tsan build/tsan -L race
fi

if [ $failed -ne 0 ]; then
    echo "== FAILED: see the output above" >&2
    exit 1
fi
echo "== all tests passed"
