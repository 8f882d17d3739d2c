#!/usr/bin/env bash
# Installs what kaffe needs to build, test and benchmark on Debian 12.
# Idempotent: quiet when everything is already there.
#
#   scripts/setup.sh            the build and test toolchain
#   scripts/setup.sh --broker   also Java and Maven, for the real-broker test
#                               tier (scripts/kafka); implied when CI=true
#   scripts/setup.sh --cluster  also what the real-cluster tier needs: Java,
#                               Maven, and Toxiproxy 2.5.0 built with Go into
#                               the cache (see below); implied when CI=true
#   scripts/setup.sh --rdkafka  also what scripts/rdkafka.sh needs to build
#                               librdkafka 2.12.1 (cargo, when that build is
#                               not cached yet), and builds it; implied when
#                               CI=true
set -euo pipefail

cluster=0
broker=0
rdkafka=0
for arg in "$@"; do
    case "$arg" in
        --broker) broker=1 ;;
        --cluster) broker=1 cluster=1 ;;
        --rdkafka) rdkafka=1 ;;
        *) echo "setup: unknown option $arg (--broker, --cluster, --rdkafka)" >&2; exit 2 ;;
    esac
done
if [ "${CI:-}" = "true" ]; then
    broker=1 cluster=1 rdkafka=1
fi

packages=(build-essential cmake ninja-build pkg-config
          librdkafka-dev liburcu-dev libcriterion-dev libssl-dev
          clang clang-format gnuplot-nox openssl kcat python3 doxygen
          libmicrohttpd-dev prometheus # kaffe consume --metrics-addr; promtool in tests
          libclang-rt-14-dev) # libFuzzer and the sanitizer runtimes for clang (scripts/fuzz.sh)

# Java and Maven are large: only when asked for, or in CI where the broker
# tier is mandatory.
if [ $broker -eq 1 ]; then
    packages+=(openjdk-17-jdk-headless maven)
fi
if [ $cluster -eq 1 ]; then
    packages+=(curl)
    # Go only to build Toxiproxy once; any Go >= 1.17 on PATH will do.
    toxi_bin=${KAFFE_CACHE:-$HOME/.cache/kaffe}/toxiproxy-2.5.0/toxiproxy-server
    if [ ! -x "$toxi_bin" ] && ! command -v go >/dev/null; then
        packages+=(golang-go)
    fi
fi

# cargo only to fetch librdkafka's source once (scripts/rdkafka.sh).
rdkafka_done=${KAFFE_CACHE:-$HOME/.cache/kaffe}/librdkafka-2.12.1/.complete
if [ $rdkafka -eq 1 ] && [ ! -f "$rdkafka_done" ] && ! command -v cargo >/dev/null; then
    packages+=(cargo)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Toxiproxy (the real-cluster tier's network faults): the Go module
# github.com/Shopify/toxiproxy/v2 at v2.5.0, built with `go install` into
# ${KAFFE_CACHE:-~/.cache/kaffe}/toxiproxy-2.5.0/toxiproxy-server, once.
# Needs Go >= 1.17 on PATH (installed above as Debian 12's golang-go, 1.19,
# when there is none; the Go module proxy serves the sources).
if [ $cluster -eq 1 ]; then
    toxi_dir=${KAFFE_CACHE:-$HOME/.cache/kaffe}/toxiproxy-2.5.0
    if [ ! -x "$toxi_dir/toxiproxy-server" ]; then
        if ! command -v go >/dev/null; then
            echo "setup: go not found: the real-cluster tier needs Go to build Toxiproxy" >&2
            echo "       (apt-get install golang-go, or https://go.dev/dl/), then rerun scripts/setup.sh --cluster" >&2
            exit 1
        fi
        echo "setup: building Toxiproxy 2.5.0 with $(go version) into $toxi_dir" >&2
        mkdir -p "$toxi_dir"
        gobuild=$(mktemp -d)
        # go install of a module's main package at a version; GOPATH in a
        # temporary directory keeps the module cache out of the user's.
        if ! GOBIN=$gobuild/bin GOPATH=$gobuild/gopath GOFLAGS=-modcacherw \
                go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0 >&2; then
            rm -rf "$gobuild"
            echo "setup: go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0 failed" >&2
            exit 1
        fi
        mv "$gobuild/bin/server" "$toxi_dir/toxiproxy-server"
        rm -rf "$gobuild"
    fi
fi

# librdkafka 2.12.1 for the version matrix: built once into the cache.
if [ $rdkafka -eq 1 ] && [ ! -f "$rdkafka_done" ]; then
    bash "$(dirname "$0")/rdkafka.sh" >/dev/null
fi
