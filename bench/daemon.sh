#!/usr/bin/env bash
# berthd core figures: start-up time to the first /_ping, idle RSS (fresh
# and after a burst of requests), `docker version` / `docker info` latency
# through the real CLI and the raw API latency of /_ping and /info with curl
# -- for berthd (release build) and, when installed, Debian's dockerd (plus
# the containerd it starts) on a private socket, data root and exec root
# (never /var/run/docker.sock). Needs root. Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_need_root bench/daemon.sh
bench_bins berthd
N=${BENCH_RUNS:-20}
bench_workdir bdaemon-bench

time_ms() { # command... -> median ms over N runs (one decimal)
    local t0 times=()
    for _ in $(seq "$N"); do
        t0=$(now_us); "$@" >/dev/null; times+=($(( $(now_us) - t0 )))
    done
    printf '%s\n' "${times[@]}" | median | awk '{printf "%.1f", $1/1000}'
}

measure() { # name socket startup_us pids...
    local name=$1 sock=$2 startup=$3
    shift 3
    local rss_sum
    rss_sum() { local s=0; for p in "$@"; do s=$(( s + $(rss_kb "$p") )); done; echo $s; }
    sleep 2
    local idle; idle=$(rss_sum "$@")
    export DOCKER_HOST="unix://$sock"
    local v i p info
    v=$(time_ms "$DOCKER" version)
    i=$(time_ms "$DOCKER" info)
    p=$(time_ms curl -sf --unix-socket "$sock" http://localhost/_ping)
    info=$(time_ms curl -sf --unix-socket "$sock" http://localhost/v1.41/info)
    for _ in $(seq 200); do curl -sf --unix-socket "$sock" http://localhost/_ping >/dev/null; done
    local busy; busy=$(rss_sum "$@")
    unset DOCKER_HOST
    bench_figure "daemon start to first /_ping, ms" "$name" "$(awk "BEGIN{print $startup/1000}")" ms
    bench_figure "daemon RSS idle, kB" "$name" "$idle" kB
    bench_figure "daemon RSS after 300 requests, kB" "$name" "$busy" kB
    bench_figure "curl /info (API), ms" "$name" "$info" ms
    printf '%-22s start %6.1f ms  RSS idle %6s kB  after 300 req %6s kB  docker version %6s ms  docker info %6s ms  curl /_ping %5s ms  curl /info %5s ms\n' \
        "$name" "$(awk "BEGIN{print $startup/1000}")" "$idle" "$busy" "$v" "$i" "$p" "$info"
}

echo "median of $N runs each; RSS = VmRSS summed over the daemon's processes"

# --- berthd ---------------------------------------------------------------
start_berthd "$WORK/berth" "berth-bench-$$"
up=$(wait_ping "$DAEMON_SOCK" "$DAEMON_PID" "$DAEMON_T0")
measure berthd "$DAEMON_SOCK" "$up" "$DAEMON_PID"

# --- dockerd (Debian docker.io), private everything -------------------------
if command -v dockerd >/dev/null; then
    start_dockerd "$WORK/docker" bench
    up=$(wait_ping "$DAEMON_SOCK" "$DAEMON_PID" "$DAEMON_T0")
    CPID=$(pgrep -P "$DAEMON_PID" containerd || true)
    measure "dockerd + containerd" "$DAEMON_SOCK" "$up" "$DAEMON_PID" ${CPID:+$CPID}
else
    echo "dockerd not installed: berthd figures only"
fi
