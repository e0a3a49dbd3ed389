#!/usr/bin/env bash
# The long form of the crash-consistency test: kill -9 of berthd at random
# points of run/create/start/stop/restart/rm/commit/load, N times (default 200; CI runs
# 20 as part of scripts/test.sh), then every container must start, stop and
# be removed, leaving nothing behind. Prints the figures at the end.
# Usage: scripts/crash-soak.sh [ITERATIONS] (BERTH_CRASH_SEED replays a run)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "crash-soak.sh: needs root" >&2; exit 1; }
cargo build --workspace --bins
mkdir -p target/fixtures
[ -f target/fixtures/busybox.tar ] || rootfs-fixtures/build.sh target/fixtures
export BERTH_FIXTURES=$PWD/target/fixtures
export BERTH_CRASH_ITERATIONS="${1:-200}"
cargo test -p berth-tests --test containers_crash -- --nocapture kill9_at_random_points_converges
