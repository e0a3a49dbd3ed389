#!/usr/bin/env bash
# Daemon memory under a burst of large and malformed requests (issue 9.9):
# RSS idle, right after the burst, and 30 s later, for berthd (release)
# and, when installed, Debian's dockerd (+ its containerd) side by side.
# BENCH_CLIENTS clients x BENCH_ROUNDS requests (bench/load_bodies.py).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_need_root bench/memory.sh
bench_need bench/memory.sh python3
bench_bins berthd
CLIENTS=${BENCH_CLIENTS:-20}
ROUNDS=${BENCH_ROUNDS:-150}
bench_workdir bmemory-bench

rss_tree_kb() { # pid: VmRSS of the process and its children, summed
    local s=0 p
    for p in $1 $(pgrep -P "$1" || true); do
        s=$(( s + $(awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0) ))
    done
    echo $s
}

measure() { # name socket pid
    local idle burst after
    idle=$(rss_tree_kb "$3")
    python3 bench/load_bodies.py "$2" "$CLIENTS" "$ROUNDS"
    burst=$(rss_tree_kb "$3")
    sleep 30
    after=$(rss_tree_kb "$3")
    bench_figure "RSS after a burst of bad requests, kB" "$1" "$burst" kB
    bench_figure "RSS 30 s after that burst, kB" "$1" "$after" kB
    printf '%-20s RSS idle %7s kB  after burst %7s kB  30 s later %7s kB\n' "$1" "$idle" "$burst" "$after"
}

start_berthd "$WORK/berth" "bmem-$$" --bridge none
wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
measure berthd "$DAEMON_SOCK" "$DAEMON_PID"

if command -v dockerd >/dev/null; then
    start_dockerd "$WORK/dockerd" bmem "bmemd-$$"
    wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
    measure "dockerd+containerd" "$DAEMON_SOCK" "$DAEMON_PID"
fi
echo "$CLIENTS clients x $ROUNDS requests (2 MB malformed JSON, 60 KB header, 1 MB body)"
