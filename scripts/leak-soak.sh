#!/usr/bin/env bash
# The long form of the leak soak: N cycles (default 500; CI runs 30 as
# part of scripts/test.sh) of run/exec/rm with volumes, published ports and
# a user network against a private berthd, then mounts, cgroups, veths,
# iptables rules, berthd's fds and threads, shims and exec-root files must
# be as before. Prints the figures (RSS before/after) at the end.
# Usage: scripts/leak-soak.sh [CYCLES]
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "leak-soak.sh: needs root" >&2; exit 1; }
cargo build --workspace --bins
mkdir -p target/fixtures
[ -f target/fixtures/busybox.tar ] || rootfs-fixtures/build.sh target/fixtures
export BERTH_FIXTURES=$PWD/target/fixtures
export BERTH_LEAK_CYCLES="${1:-500}"
cargo test -p berth-tests --test reliability_leaks -- --nocapture run_exec_rm_cycles_leak_nothing
