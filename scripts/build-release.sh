#!/usr/bin/env bash
# Builds the release binaries and puts what is installed or benchmarked in
# target/dist: berthd, berth-runtime and berth-shim.
#
# berth-shim and berth-runtime are linked statically against musl where
# Rust's x86_64-unknown-linux-musl target is installed (scripts/deps.sh adds
# it). One shim runs per container for as long as the container does: a
# glibc-linked shim maps ~1.5 MB (most of it glibc's and its own text,
# faulted in 64 kB at a time), the static one ~0.9 MB. The runtime runs
# three to four times per container (create, start, delete; exec): spawning
# the glibc-linked one costs ~2.2 ms here (loading and relocating the
# shared libraries), the static one ~1.0 ms. Without the target both stay
# glibc-linked and behave the same.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --bins
dist=target/dist
mkdir -p "$dist"
install -m 0755 target/release/berthd "$dist/"
musl=x86_64-unknown-linux-musl
if rustc --print sysroot >/dev/null 2>&1 &&
    [ -d "$(rustc --print sysroot)/lib/rustlib/$musl" ]; then
    cargo build --release -p berth-shim -p berth-runtime --target "$musl"
    install -m 0755 "target/$musl/release/berth-shim" "target/$musl/release/berth-runtime" "$dist/"
else
    echo "build-release.sh: no $musl target, berth-shim and berth-runtime stay glibc-linked" >&2
    install -m 0755 target/release/berth-shim target/release/berth-runtime "$dist/"
fi
