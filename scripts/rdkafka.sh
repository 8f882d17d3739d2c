#!/usr/bin/env bash
# scripts/rdkafka.sh: builds librdkafka 2.12.1 into a private prefix, for
# building and testing kaffe against a current upstream librdkafka beside
# Debian 12's 2.0.2 (the default). Prints the prefix as the last line of
# stdout; use it with `cmake -DKAFFE_RDKAFKA_PREFIX=<prefix>`.
#
# The source is the unmodified librdkafka 2.12.1 tree shipped in the Rust
# crate rdkafka-sys 4.10.0+2.12.1, fetched with cargo from crates.io and
# verified by the crate's SHA-256 below. Configured with what kaffe uses: SSL
# (and so SASL PLAIN/SCRAM), zstd, lz4, zlib; no GSSAPI, no curl (OIDC).
# Cached in ${KAFFE_CACHE:-~/.cache/kaffe}/librdkafka-2.12.1 (skipped when
# complete). Needs cargo (rustup or Debian's cargo) and a C toolchain;
# installs libssl-dev, libzstd-dev, liblz4-dev, zlib1g-dev with apt.
set -euo pipefail
version=2.12.1
crate=rdkafka-sys
crate_version=4.10.0+$version
crate_sha256=e234cf318915c1059d4921ef7f75616b5219b10b46e9f3a511a15eb4b56a3f77
cache=${KAFFE_CACHE:-$HOME/.cache/kaffe}
prefix=$cache/librdkafka-$version

log() { echo "rdkafka: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [ -f "$prefix/.complete" ]; then
    echo "$prefix"
    exit 0
fi
command -v cargo >/dev/null || die "cargo not found (install Rust: apt-get install cargo, or rustup)"
command -v make >/dev/null || die "make not found (apt-get install build-essential)"

missing=()
for p in libssl-dev libzstd-dev liblz4-dev zlib1g-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/kaffe-rdkafka.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- The source: a throwaway cargo project that depends on the crate. -----
log "fetching $crate $crate_version with cargo"
mkdir -p "$work/fetch/src"
cat >"$work/fetch/Cargo.toml" <<TOML
[package]
name = "kaffe-rdkafka-fetch"
version = "0.0.0"
edition = "2021"

[dependencies]
$crate = "=${crate_version%%+*}"
TOML
echo 'fn main() {}' >"$work/fetch/src/main.rs"
CARGO_HOME=${CARGO_HOME:-$HOME/.cargo} cargo fetch --manifest-path "$work/fetch/Cargo.toml" >&2 ||
    die "cargo fetch failed"
file=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$crate-$crate_version.crate" 2>/dev/null | head -1)
[ -n "$file" ] || die "the crate file was not found in cargo's cache"
echo "$crate_sha256  $file" | sha256sum -c --quiet - >&2 || die "checksum mismatch for $file"
tar -xzf "$file" -C "$work"
src=$work/$crate-$crate_version/librdkafka
[ -x "$src/configure" ] || die "no librdkafka tree in the crate"
grep -q "define RD_KAFKA_VERSION *0x020c01ff" "$src/src/rdkafka.h" || die "the crate's tree is not librdkafka $version"

# --- Build and install. -----------------------------------------------------
log "building librdkafka $version into $prefix (a few minutes on 2 cores)"
(
    cd "$src"
    ./configure --prefix="$prefix" --enable-ssl --enable-zstd --enable-lz4-ext \
        --disable-gssapi --disable-curl --disable-sasl >"$work/configure.log" 2>&1 ||
        { tail -30 "$work/configure.log" >&2; exit 1; }
    nice -n 10 make -j"$(nproc)" libs >"$work/make.log" 2>&1 || { tail -40 "$work/make.log" >&2; exit 1; }
    make install-subdirs >"$work/install.log" 2>&1 || make install >"$work/install.log" 2>&1 ||
        { tail -30 "$work/install.log" >&2; exit 1; }
) || die "the build failed"
[ -f "$prefix/lib/pkgconfig/rdkafka.pc" ] || die "no rdkafka.pc under $prefix"
touch "$prefix/.complete"
log "installed librdkafka $version into $prefix"
echo "$prefix"
