#!/usr/bin/env bash
# Runs berth's whole test suite (as root): unit tests and the integration
# tests, each of which starts its own berthd on temp dirs and drives it with
# the docker CLI, docker-py and curl. Installs what it needs first
# (scripts/deps.sh is idempotent: a no-op when everything is there).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: the tests need root" >&2; exit 1; }

scripts/deps.sh

cargo build --workspace --bins
mkdir -p target/fixtures
[ -f target/fixtures/busybox.tar ] || rootfs-fixtures/build.sh target/fixtures
[ -f target/fixtures/python.tar ] || rootfs-fixtures/build-python.sh target/fixtures
export BERTH_FIXTURES=$PWD/target/fixtures
cargo test --workspace --no-fail-fast -- --test-threads="${BERTH_TEST_THREADS:-4}"
