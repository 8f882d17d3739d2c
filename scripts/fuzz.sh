#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/fuzz_<name>.c) with clang, AddressSanitizer
# and UndefinedBehaviorSanitizer into build/fuzz, then runs each for a bounded
# time, starting from its committed seeds (fuzz/corpus/<name>/). Fails on any
# crash, sanitizer report, leak, timeout or out-of-memory; the input that did
# it is kept as build/fuzz/artifacts/<name>-crash-* (reproduce with
# build/fuzz/fuzz/fuzz_<name> <that file>). What the fuzzer learns is kept in
# build/fuzz/corpus/<name> (not committed) and reused by the next run.
# fuzz/<name>.dict (or fuzz/<prefix>.dict) is passed as a libFuzzer dictionary.
#
#   scripts/fuzz.sh                 every target
#   scripts/fuzz.sh conf_set ...    only these targets
#
#   FUZZ_SECONDS   seconds per target (default 60; 25 when CI=true)
#   FUZZ_RSS_MB    memory limit per target in MiB (default 2048)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${CI:-}" = "true" ]; then
    seconds=${FUZZ_SECONDS:-25}
else
    seconds=${FUZZ_SECONDS:-60}
fi
rss_mb=${FUZZ_RSS_MB:-2048}
dir=build/fuzz

if ! command -v clang >/dev/null; then
    echo "== fuzz: clang not found (scripts/setup.sh installs clang and libclang-rt-14-dev)" >&2
    exit 1
fi
# RelWithDebInfo: optimised (the fuzzer runs more inputs) with line numbers in
# reports. kaffe has no assert() that NDEBUG would remove.
echo "== fuzz: building in $dir (clang, libFuzzer, ASan + UBSan)"
CC=clang bash scripts/build.sh "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DKAFFE_SANITIZE=address,undefined -DKAFFE_BUILD_FUZZ=ON \
    -DKAFFE_BUILD_TESTS=OFF -DKAFFE_BUILD_BENCH=OFF

targets=("$@")
if ((${#targets[@]} == 0)); then
    for source in fuzz/fuzz_*.c; do
        name=$(basename "$source" .c)
        targets+=("${name#fuzz_}")
    done
fi

mkdir -p "$dir/artifacts"
failed=()
for name in "${targets[@]}"; do
    bin=$dir/fuzz/fuzz_$name
    if [ ! -x "$bin" ]; then
        echo "== fuzz: no target fuzz_$name" >&2
        failed+=("$name")
        continue
    fi
    work=$dir/corpus/$name
    log=$dir/fuzz_$name.log
    mkdir -p "$work"
    # A dictionary, if any: fuzz/<name>.dict, else fuzz/<prefix>.dict
    # (conf_set and conf_load share fuzz/conf.dict).
    dict=()
    for candidate in "fuzz/$name.dict" "fuzz/${name%%_*}.dict"; do
        if [ -f "$candidate" ]; then
            dict=(-dict="$candidate")
            break
        fi
    done
    echo "== fuzz: fuzz_$name for ${seconds} s"
    # -timeout: one input taking longer than 25 s is a failure (a hang).
    # abort_on_error: sanitizer reports end the run as crashes.
    if ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "$bin" -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -timeout=25 \
        -print_final_stats=1 -artifact_prefix="$dir/artifacts/$name-" "${dict[@]}" \
        "$work" "fuzz/corpus/$name" >"$log" 2>&1; then
        # The final status line: "#runs DONE cov: N ft: N corp: N/size ... exec/s: N rss: N".
        done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
        echo "   ok: ${done_line:-see $log}"
    else
        echo "== fuzz: fuzz_$name FAILED (log: $log)" >&2
        grep -E 'ERROR|runtime error|property violated|SUMMARY|Test unit written' "$log" |
            head -20 >&2 || tail -30 "$log" >&2
        failed+=("$name")
    fi
done

if ((${#failed[@]})); then
    echo "== fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "== fuzz: ${#targets[@]} targets ran ${seconds} s each without a crash"
