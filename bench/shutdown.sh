#!/usr/bin/env bash
# Graceful stop and restart of berthd with running containers (live-restore
# off, the default): how long SIGTERM takes to stop N containers that leave
# at SIGTERM plus 3 that ignore it (--stop-timeout 2; stopped in parallel, so
# about 2 s rather than 6 s), and how long the next start takes until every
# `--restart always` container runs again. Then the same with live-restore:
# the stop does not wait for containers and they are adopted. Needs root;
# leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_need_root bench/shutdown.sh
bench_bins berthd berth-shim berth-runtime
bench_fixtures
N=${BENCH_CONTAINERS:-10}
bench_workdir bshutdown-bench
cleanup_hook() { rm_containers_everywhere; }

running() { "$DOCKER" ps -q | wc -l; }

one_round() { # label daemon.json
    local dir="$WORK/$1" total=$((N + 3)) t0 stop_ms back_ms
    mkdir -p "$dir"
    echo "$2" >"$dir/daemon.json"
    start_berthd "$dir" "berth-bench-sd-$$-$1"
    wait_ping "$DAEMON_SOCK" "$DAEMON_PID" "$DAEMON_T0" >/dev/null
    export DOCKER_HOST="unix://$DAEMON_SOCK"
    "$DOCKER" load -i "$FIXTURES/busybox.tar" >/dev/null
    for i in $(seq "$N"); do
        "$DOCKER" run -d --restart always busybox sh -c \
            "trap 'exit 0' TERM; while true; do sleep 0.1; done" >/dev/null
    done
    for i in 1 2 3; do
        "$DOCKER" run -d --restart always --stop-timeout 2 busybox sh -c \
            "trap '' TERM; while true; do sleep 0.1; done" >/dev/null
    done
    t0=$(now_us)
    kill "$DAEMON_PID"
    while kill -0 "$DAEMON_PID" 2>/dev/null; do sleep 0.01; done
    stop_ms=$(( ($(now_us) - t0) / 1000 ))
    start_berthd "$dir" "berth-bench-sd-$$-$1"
    t0=$DAEMON_T0
    wait_ping "$DAEMON_SOCK" "$DAEMON_PID" "$DAEMON_T0" >/dev/null
    while [ "$(running)" -lt "$total" ]; do sleep 0.01; done
    back_ms=$(( ($(now_us) - t0) / 1000 ))
    bench_figure "graceful stop with $total containers ($1), ms" berthd "$stop_ms" ms
    bench_figure "start until $total containers run ($1), ms" berthd "$back_ms" ms
    printf '%-14s %2d containers: SIGTERM to exit %6d ms; start to all running %6d ms\n' \
        "$1" "$total" "$stop_ms" "$back_ms"
    rm_containers_everywhere
    unset DOCKER_HOST
}

one_round live-restore-off '{}'
one_round live-restore-on '{"live-restore": true}'
