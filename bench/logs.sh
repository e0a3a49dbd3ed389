#!/usr/bin/env bash
# `docker logs` figures: the whole log of a container that printed 100 MB
# (json-file, ~1.2 M lines) and `docker logs --tail 10` of it, for berthd
# (release build) and, when installed, Debian's dockerd on a private socket,
# data root and exec root (never /var/run/docker.sock). In both engines the
# log is produced the real way: a busybox container prints the bytes and
# the engine's logger writes them (nothing is written to the log file by
# hand). Prints medians; checks the byte count. Needs root. Leaves nothing
# behind.
#
#   bench/logs.sh            BENCH_LOG_MB (default 100), BENCH_RUNS (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_need_root bench/logs.sh
bench_bins berthd berth-shim berth-runtime
bench_fixtures
LOG_MB=${BENCH_LOG_MB:-100}
RUNS=${BENCH_RUNS:-3}
BYTES=$(( LOG_MB * 1024 * 1024 ))
# 88-byte lines.
LINE='the quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstuvwxyz ABCDE'

bench_workdir blogs-bench
cleanup_hook() { rm_containers_everywhere biglog; }

measure() { # name socket
    local name=$1
    export DOCKER_HOST="unix://$2"
    "$DOCKER" load -i "$FIXTURES/busybox.tar" >/dev/null
    local t0 gen
    t0=$(now_ms)
    "$DOCKER" run -d --name biglog --network none busybox \
        sh -c "yes '$LINE' | head -c $BYTES" >/dev/null
    "$DOCKER" wait biglog >/dev/null
    gen=$(( $(now_ms) - t0 ))
    local got
    got=$("$DOCKER" logs biglog | wc -c)
    if [ "$got" != "$BYTES" ]; then
        echo "$name: docker logs returned $got bytes, expected $BYTES" >&2
    fi
    local all=() tail=() since=()
    for _ in $(seq "$RUNS"); do
        t0=$(now_ms); "$DOCKER" logs biglog >/dev/null; all+=($(( $(now_ms) - t0 )))
        t0=$(now_ms); "$DOCKER" logs --tail 10 biglog >/dev/null; tail+=($(( $(now_ms) - t0 )))
    done
    local logsize
    logsize=$(du -cm "$(docker_log_dir "$name")"/*json.log* 2>/dev/null | tail -1 | cut -f1)
    printf '%-8s  log written in %6s ms (json files %s MB)   docker logs (%s MB out): %6s ms   docker logs --tail 10: %5s ms   (medians of %s)\n' \
        "$name" "$gen" "${logsize:-?}" "$LOG_MB" "$(printf '%s\n' "${all[@]}" | median)" \
        "$(printf '%s\n' "${tail[@]}" | median)" "$RUNS"
    "$DOCKER" rm -f biglog >/dev/null
    unset DOCKER_HOST
}

docker_log_dir() { # name
    local id
    id=$("$DOCKER" inspect -f '{{.Id}}' biglog)
    echo "$WORK/$1/data/containers/$id"
}

# --- berthd ---------------------------------------------------------------
start_berthd "$WORK/berthd" "berth-bench-logs-$$"
wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
measure berthd "$DAEMON_SOCK"

# --- dockerd (Debian docker.io), private everything -------------------------
if command -v dockerd >/dev/null; then
    start_dockerd "$WORK/dockerd" bench "dockerd-bench-logs-$$"
    wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
    measure dockerd "$DAEMON_SOCK"
else
    echo "dockerd not installed: berthd figures only"
fi
