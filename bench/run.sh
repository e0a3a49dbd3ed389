#!/usr/bin/env bash
# Runs every benchmark in bench/ and prints their figures. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --bins
export BERTH_BIN_DIR=$PWD/target/release
mkdir -p target/fixtures
[ -f target/fixtures/busybox.tar ] || rootfs-fixtures/build.sh target/fixtures
export BERTH_FIXTURES=$PWD/target/fixtures
for b in bench/*.sh; do
    [ "$(basename "$b")" = run.sh ] && continue
    [ "$(basename "$b")" = lib.sh ] && continue
    echo "== $b"
    bash "$b" || echo "($b failed)"
done
