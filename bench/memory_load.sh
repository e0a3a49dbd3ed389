#!/usr/bin/env bash
# Daemon memory with many containers and after sustained mixed load
# (issue 15), berthd (release) side by side with Debian's dockerd (its
# containerd counted separately) on private sockets and roots:
#   - idle: BENCH_CONTAINERS (100) containers running `sleep`, RSS after
#     they have all started and the daemon sat idle for 10 s
#   - load: BENCH_CLIENTS (20) keep-alive API clients for BENCH_SECONDS
#     (120) of mixed rounds (bench/apiload.rs `mixed`: run `true` with
#     create/start/wait/logs/delete, list, inspect, exec, images, info)
#   - RSS right after the load, and BENCH_SETTLE (60) seconds later
# The daemon's own RSS: shims/containerd-shims are per-container figures
# (bench/shim.sh, bench/containers.sh). Needs root. Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_need_root bench/memory_load.sh
bench_bins berthd berth-shim berth-runtime
bench_fixtures
bench_apiload
N=${BENCH_CONTAINERS:-100}
CLIENTS=${BENCH_CLIENTS:-20}
SECONDS_LOAD=${BENCH_SECONDS:-120}
SETTLE=${BENCH_SETTLE:-60}
bench_workdir bmemload-bench
cleanup_hook() { rm_containers_everywhere; }
trap 'echo "bench/memory_load.sh failed at line $LINENO" >&2; tail -5 "$WORK"/*/log >&2' ERR

# Sum of VmRSS of the processes named $1 whose command line mentions $2.
rss_of_named() { # comm path-fragment
    local s=0 p
    for p in /proc/[0-9]*; do
        [ "$(cat "$p/comm" 2>/dev/null)" = "$1" ] || continue
        tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "$2" || continue
        s=$(( s + $(rss_kb "$(basename "$p")") ))
    done
    echo "$s"
}

measure() { # name socket daemon-pid extra-comm
    local name=$1 pid=$3 extra=$4
    export DOCKER_HOST="unix://$2"
    "$DOCKER" load -i "$FIXTURES/busybox.tar" >/dev/null
    local i
    for i in $(seq "$N"); do
        "$DOCKER" run -d --network none --name "idle$i" busybox sleep 100000 >/dev/null
    done
    sleep 10
    local idle extra_idle load_out after extra_after settled extra_settled
    idle=$(rss_kb "$pid")
    extra_idle=$([ -n "$extra" ] && rss_of_named "$extra" "$WORK/$name" || echo 0)
    load_out=$("$APILOAD" "$2" mixed busybox idle1 "$CLIENTS" "$SECONDS_LOAD")
    after=$(rss_kb "$pid")
    extra_after=$([ -n "$extra" ] && rss_of_named "$extra" "$WORK/$name" || echo 0)
    sleep "$SETTLE"
    settled=$(rss_kb "$pid")
    extra_settled=$([ -n "$extra" ] && rss_of_named "$extra" "$WORK/$name" || echo 0)
    local rounds requests errors
    read -r rounds requests errors <<<"$load_out"
    bench_figure "daemon RSS idle with $N containers, kB" "$name" "$idle" kB
    bench_figure "daemon RSS ${SETTLE} s after $CLIENTS clients x ${SECONDS_LOAD} s mixed load, kB" "$name" "$settled" kB
    BETTER=higher bench_figure "mixed-load requests/s, $CLIENTS clients" "$name" \
        "$(awk -v r="$requests" -v s="$SECONDS_LOAD" 'BEGIN {printf "%.0f", r / s}')" req/s
    printf '%-8s idle with %s running: %7s kB   right after load: %7s kB   %s s later: %7s kB   load: %s rounds, %s requests, %s errors%s\n' \
        "$name" "$N" "$idle" "$after" "$SETTLE" "$settled" "$rounds" "$requests" "$errors" \
        "$([ -n "$extra" ] && echo "   ($extra: $extra_idle / $extra_after / $extra_settled kB)")"
    rm_containers_everywhere
    unset DOCKER_HOST
}

start_berthd "$WORK/berthd" "berth-bench-memload-$$"
wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
measure berthd "$DAEMON_SOCK" "$DAEMON_PID" ""

if command -v dockerd >/dev/null; then
    start_dockerd "$WORK/dockerd" bmemload "dockerd-bench-memload-$$"
    wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
    measure dockerd "$DAEMON_SOCK" "$DAEMON_PID" containerd
else
    echo "dockerd not installed: berthd figures only"
fi
