#!/usr/bin/env bash
# Installs what kaffe needs to build, test and benchmark on Debian 12.
# Idempotent: quiet when everything is already there.
#
#   scripts/setup.sh            the build and test toolchain
#   scripts/setup.sh --broker   also Java and Maven, for the real-broker test
#                               tier (scripts/kafka); implied when CI=true
set -euo pipefail

packages=(build-essential cmake ninja-build pkg-config
          librdkafka-dev liburcu-dev libcriterion-dev libssl-dev
          clang clang-format gnuplot-nox openssl kcat python3
          libmicrohttpd-dev prometheus # kaffe consume --metrics-addr; promtool in tests
          libclang-rt-14-dev) # libFuzzer and the sanitizer runtimes for clang (scripts/fuzz.sh)

# Java and Maven are large: only when asked for, or in CI where the broker
# tier is mandatory.
if [ "${1:-}" = "--broker" ] || [ "${CI:-}" = "true" ]; then
    packages+=(openjdk-17-jdk-headless maven)
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
