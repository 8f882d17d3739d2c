#!/usr/bin/env bash
# Builds kaffe and runs every test: the plain build, then AddressSanitizer +
# UndefinedBehaviorSanitizer, then ThreadSanitizer. Installs what it needs.
# Under ThreadSanitizer only the race tier runs (tests/race): Criterion cannot
# start under TSan (see tests/support/check.h).
#
# The broker tier (tests/broker, ctest label "broker") runs in the plain build
# against a real Apache Kafka that scripts/kafka/start.sh starts and
# scripts/kafka/stop.sh stops (always, also on failure or Ctrl-C). It needs
# Java and Maven: without them it is skipped with a message, except with
# CI=true, where it is mandatory (scripts/setup.sh installs them in CI).
#
# The real-cluster tier (tests/cluster, ctest label "cluster") runs next in
# the plain build, against a 3-node Apache Kafka (KRaft) behind Toxiproxy
# that scripts/kafka/cluster.sh starts and stops (always). Its scenarios kill,
# restart, freeze and blackhole brokers under load, with consumer processes
# in one group, and check loss, replays and duplicates with plain clients
# (docs/RELIABILITY.md, "Real cluster"). It needs Java, Maven, kcat, curl and
# Toxiproxy (scripts/setup.sh --cluster builds it with Go): without them it is
# skipped with a message, except with CI=true, where it is mandatory.
# KAFFE_CLUSTER_RESULTS=FILE keeps its rows (scripts/reliability.sh cluster).
#
# The plain build also builds the API reference with Doxygen (warnings are
# errors: every public symbol must be documented).
#
# Then the same tests against a second librdkafka, 2.12.1 (the version
# matrix): scripts/rdkafka.sh builds it into the cache, kaffe is built
# against it in build/test-rdk212, and its plain tier (without the long
# "scale" tests) and its broker tier against Kafka 3.9.1 and 4.1.1 run.
# Building librdkafka needs cargo the first time (to fetch the source from
# crates.io); without it the leg is skipped, except with CI=true.
#
# Then the fuzz targets (scripts/fuzz.sh: clang, libFuzzer, ASan + UBSan),
# each for FUZZ_SECONDS (25 s by default here, to keep CI within 30 minutes). They need clang with libFuzzer:
# without it they are skipped with a message, except with CI=true.
#
#   scripts/test.sh            all of the above
#   scripts/test.sh quick      the plain build only (with the broker and cluster tiers
#                              and apidocs)
#   scripts/test.sh broker     the plain build's broker tier only
#   scripts/test.sh cluster    the plain build's real-cluster tier only
#   scripts/test.sh soak       the real-cluster soak: random faults for
#                              KAFFE_REAL_FAULTS_SOAK_MINUTES (default 30)
#   scripts/test.sh rdkafka    the librdkafka 2.12.1 leg only
#   scripts/test.sh fuzz       the fuzz targets only
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}
if [ "$mode" = cluster ] || [ "$mode" = soak ]; then
    bash scripts/setup.sh --cluster
else
    bash scripts/setup.sh
fi

# One more ctest job than cores: most tests wait on brokers and rebalances
# more than they compute (on 2 cores, 3 jobs took the plain tier from 632 s
# to 472 s and ASan's from 500 s to 365 s). Tests that compare rates run
# alone (RUN_SERIAL).
jobs=$(($(nproc) + 1))
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

broker_env=""
stop_broker() {
    if [ -n "$broker_env" ]; then
        bash scripts/kafka/stop.sh "$broker_env" || true
        broker_env=""
    fi
}
cluster_env=""
stop_cluster() {
    if [ -n "$cluster_env" ]; then
        bash scripts/kafka/cluster.sh stop "$cluster_env" || true
        cluster_env=""
    fi
}
trap 'stop_broker; stop_cluster' EXIT
trap 'stop_broker; stop_cluster; exit 130' INT TERM

# Says why a tier cannot run when something it needs is missing: FAILED
# with CI=true (sets failed), SKIPPED otherwise. Returns 1 when nothing is
# missing (the tier runs).
tier_missing() { # tier setup-option missing...
    local tier=$1 option=$2
    shift 2
    (($#)) || return 1
    if [ "${CI:-}" = "true" ]; then
        echo "== $tier: FAILED: CI=true needs $* (scripts/setup.sh installs them when CI=true)" >&2
        failed=1
    else
        echo "== $tier: SKIPPED: $* not found. The $tier tier did not run;"
        echo "   install with: bash scripts/setup.sh $option"
    fi
}

# The broker tier, in an already built directory, against the Kafka of
# KAFFE_KAFKA_VERSION (scripts/kafka/jars.sh; 3.9.1 by default). Extra
# arguments go to ctest (e.g. -E to leave a test out).
run_broker_tier() { # build-dir [ctest-args...]
    local dir=$1 missing=() kafka=${KAFFE_KAFKA_VERSION:-3.9.1}
    shift
    command -v java >/dev/null || missing+=(java)
    command -v mvn >/dev/null || missing+=(mvn)
    ! tier_missing broker --broker "${missing[@]}" || return 0
    echo "== broker: starting Apache Kafka $kafka (scripts/kafka/start.sh)"
    local t0=$SECONDS
    if ! broker_env=$(bash scripts/kafka/start.sh | tail -1) || [ ! -f "$broker_env" ]; then
        echo "== broker: FAILED: the broker did not start" >&2
        broker_env=""
        failed=1
        return
    fi
    echo "== broker: testing $dir against Kafka $kafka (ctest -L broker $*)"
    if ! (cd "$dir" && KAFFE_BROKER_ENV="$broker_env" \
            ctest --output-on-failure --no-tests=error -L broker "$@"); then
        failed=1
    fi
    stop_broker
    echo "== broker: Kafka $kafka tier took $((SECONDS - t0)) s (start, tests, stop)"
}

# The second librdkafka's leg: kaffe built against librdkafka 2.12.1
# (scripts/rdkafka.sh builds it once into the cache), its plain tier without
# the "scale" label (the long runs of kaffe's own logic, which the default
# build's legs cover), then its broker tier against Kafka 3.9.1 and 4.1.1
# (without the peer harness's run, which does not depend on librdkafka's
# version). Needs cargo to fetch the source the first time.
run_rdkafka_leg() {
    local prefix t0=$SECONDS
    if ! prefix=$(bash scripts/rdkafka.sh | tail -1) || [ ! -f "$prefix/lib/pkgconfig/rdkafka.pc" ]; then
        if [ "${CI:-}" = "true" ]; then
            echo "== rdkafka-2.12.1: FAILED: scripts/rdkafka.sh could not build librdkafka 2.12.1" >&2
            failed=1
        else
            echo "== rdkafka-2.12.1: SKIPPED: scripts/rdkafka.sh could not build librdkafka 2.12.1 (see above)"
        fi
        return
    fi
    BUILD_ARGS=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DKAFFE_RDKAFKA_PREFIX=$prefix")
    run_suite rdkafka-2.12.1 build/test-rdk212 -LE 'broker|cluster|scale'
    local kafka
    for kafka in 3.9.1 4.1.1; do
        KAFFE_KAFKA_VERSION=$kafka run_broker_tier build/test-rdk212 -E bench_peers
    done
    echo "== rdkafka-2.12.1: leg took $((SECONDS - t0)) s"
}

# The real-cluster tier, in an already built directory. soak: run only the
# soak scenario (KAFFE_REAL_FAULTS_SOAK=1), without ctest's time limit.
run_cluster_tier() { # build-dir [soak]
    local dir=$1 soak=${2:-} missing=()
    local toxiproxy=${KAFFE_TOXIPROXY:-${KAFFE_CACHE:-$HOME/.cache/kaffe}/toxiproxy-2.5.0/toxiproxy-server}
    local tool
    for tool in java mvn kcat curl; do
        command -v $tool >/dev/null || missing+=($tool)
    done
    [ -x "$toxiproxy" ] || missing+=("toxiproxy-server (built with go)")
    ! tier_missing cluster --cluster "${missing[@]}" || return 0
    echo "== cluster: starting a 3-node Apache Kafka behind Toxiproxy (scripts/kafka/cluster.sh)"
    local t0=$SECONDS
    if ! cluster_env=$(bash scripts/kafka/cluster.sh start 3 | tail -1) || [ ! -f "$cluster_env" ]; then
        echo "== cluster: FAILED: the cluster did not start" >&2
        cluster_env=""
        failed=1
        return
    fi
    if [ -n "$soak" ]; then
        echo "== cluster: soak, ${KAFFE_REAL_FAULTS_SOAK_MINUTES:-30} min of random faults"
        if ! (cd "$dir" && KAFFE_CLUSTER_ENV="$cluster_env" KAFFE_REAL_FAULTS_SOAK=1 \
                tests/cluster_test_cluster_faults --jobs 1 --filter 'cluster/soak*'); then
            failed=1
        fi
    else
        echo "== cluster: the fault scenarios (ctest -L cluster)"
        if ! (cd "$dir" && KAFFE_CLUSTER_ENV="$cluster_env" \
                ctest --output-on-failure --no-tests=error -L cluster); then
            failed=1
        fi
    fi
    stop_cluster
    echo "== cluster: tier took $((SECONDS - t0)) s (start, scenarios, stop)"
}

# The API reference (docs/Doxyfile, `ninja apidocs`), in an already built
# directory: any Doxygen warning, above all an undocumented public symbol in
# include/kaffe, fails. Mandatory with CI=true; skipped with a note when
# doxygen is missing otherwise.
run_apidocs() { # build-dir
    local dir=$1
    if ! command -v doxygen >/dev/null && [ "${CI:-}" != "true" ]; then
        echo "== apidocs: SKIPPED: doxygen not found (bash scripts/setup.sh installs it)"
        return
    fi
    echo "== apidocs: doxygen, warnings are errors"
    if ! ninja -C "$dir" apidocs; then
        echo "== apidocs: FAILED: see the warnings above (document every public symbol)" >&2
        failed=1
    fi
}

# The fuzz targets, when clang can link libFuzzer (mandatory with CI=true).
run_fuzz() {
    if ! echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' |
        clang -x c -fsanitize=fuzzer,address,undefined -o /dev/null - >/dev/null 2>&1; then
        if [ "${CI:-}" = "true" ]; then
            echo "== fuzz: FAILED: CI=true needs clang with libFuzzer (scripts/setup.sh installs clang and libclang-rt-14-dev)" >&2
            failed=1
        else
            echo "== fuzz: SKIPPED: clang with libFuzzer not found; install with: bash scripts/setup.sh"
        fi
        return
    fi
    FUZZ_SECONDS=${FUZZ_SECONDS:-25} bash scripts/fuzz.sh || failed=1
}

if [ "$mode" = fuzz ]; then
    run_fuzz
    [ $failed -eq 0 ] || { echo "== FAILED: see the output above" >&2; exit 1; }
    echo "== fuzz targets passed"
    exit 0
fi

BUILD_ARGS=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [ "$mode" = rdkafka ]; then
    run_rdkafka_leg
    [ $failed -eq 0 ] || { echo "== FAILED: see the output above" >&2; exit 1; }
    echo "== librdkafka 2.12.1 leg passed"
    exit 0
fi

case "$mode" in
    broker | cluster | soak)
        echo "== plain: building in build/test"
        bash scripts/build.sh build/test "${BUILD_ARGS[@]}"
        ;;
    *)
        run_suite plain build/test -LE 'broker|cluster'
        run_apidocs build/test
        ;;
esac
case "$mode" in
    broker) run_broker_tier build/test ;;
    cluster) run_cluster_tier build/test ;;
    soak) run_cluster_tier build/test soak ;;
    *)
        run_broker_tier build/test
        # What librdkafka 2.0.2 does against Kafka 4: the version-sensitive
        # broker tests (SASL's SCRAM refusal, compression, the group
        # protocols), each asserting the documented behaviour.
        KAFFE_KAFKA_VERSION=4.1.1 run_broker_tier build/test -R 'sasl|compression|group_protocol'
        run_cluster_tier build/test
        ;;
esac
if [ "$mode" = all ]; then
    run_rdkafka_leg
fi

if [ "$mode" = all ]; then
    BUILD_ARGS=(-DCMAKE_BUILD_TYPE=Debug -DKAFFE_SANITIZE=address,undefined -DKAFFE_BUILD_BENCH=OFF)
    # The fault suite (test_faults_*) runs at half size under ASan (KAFFE_FAULTS_SCALE).
    KAFFE_FAULTS_SCALE=0.5 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        run_suite asan+ubsan build/asan -LE 'broker|cluster'

    BUILD_ARGS=(-DCMAKE_BUILD_TYPE=Debug -DKAFFE_SANITIZE=thread -DKAFFE_BUILD_BENCH=OFF)
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp" \
        run_suite tsan build/tsan -L race

    run_fuzz
fi

if [ $failed -ne 0 ]; then
    echo "== FAILED: see the output above" >&2
    exit 1
fi
echo "== all tests passed"
