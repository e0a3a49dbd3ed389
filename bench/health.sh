#!/usr/bin/env bash
# What healthchecks cost: BENCH_HEALTH_N containers (default 50) probing
# every second (`--health-cmd true --health-interval 1s`), and over a
# BENCH_HEALTH_SECS window (default 30 s) the CPU the daemon used (utime +
# stime from /proc/PID/stat) and what the per-container processes used
# (berth-shim with the berth-runtime execs it waited for; containerd-shim
# with runc), for berthd (release build) and, when installed, Debian's
# dockerd (+ the containerd it runs) side by side. Also checks every
# container reached "healthy". No assertions: a measurement. Needs root.
# Leaves nothing behind.
#
#   bench/health.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_need_root bench/health.sh
N=${BENCH_HEALTH_N:-50}
SECS=${BENCH_HEALTH_SECS:-30}
bench_bins berthd berth-shim berth-runtime
bench_fixtures
bench_workdir bhealth-bench
PARENT=bhealth-bench-$$
cleanup_hook() { rm_containers_everywhere; }
TCK=$(getconf CLK_TCK)

# utime+stime (+ the waited-for children's with "all") of PIDs, in ticks.
ticks() { # self|all pid...
    local mode=$1 p s=0
    shift
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] || continue
        # Fields after the ")" of comm: utime is 12th, stime 13th,
        # cutime 14th, cstime 15th.
        s=$(( s + $(sed 's/.*) //' "/proc/$p/stat" | awk -v m="$mode" \
            '{ t = $12 + $13; if (m == "all") t += $14 + $15; print t }') ))
    done
    echo "$s"
}

pct() { # ticks seconds
    awk -v t="$1" -v s="$2" -v h="$TCK" 'BEGIN { printf "%.1f", 100 * t / h / s }'
}

# Daemon-side processes (the daemon and, for dockerd, its containerd) and
# per-container ones (shims), found by the work directory in their command
# lines.
daemon_pids() { echo "$1" $(pgrep -P "$1" -x containerd || true); }
shim_pids() { pgrep -f "$1" | grep -vx "$2" || true; }

declare -A RESULT
measure() { # name socket daemon-pid shim-pattern
    local name=$1 sock=$2 pid=$3 pattern=$4 i healthy
    export DOCKER_HOST="unix://$sock"
    "$DOCKER" load -q -i "$FIXTURES/busybox.tar" >/dev/null
    for i in $(seq "$N"); do
        "$DOCKER" run -d --name "bh$i" --network none --health-cmd true \
            --health-interval 1s busybox sleep 100000 >/dev/null
    done
    # Every container healthy first: probes are running.
    for _ in $(seq 600); do
        healthy=$("$DOCKER" ps -q --filter health=healthy | wc -l)
        [ "$healthy" -ge "$N" ] && break
        sleep 0.2
    done
    local dpids spids d0 s0 t0 d1 s1 t1 secs
    dpids=$(daemon_pids "$pid")
    spids=$(shim_pids "$pattern" "$pid")
    # shellcheck disable=SC2086
    d0=$(ticks self $dpids); s0=$(ticks all $spids); t0=$(now_ns)
    sleep "$SECS"
    # shellcheck disable=SC2086
    d1=$(ticks self $dpids); s1=$(ticks all $spids); t1=$(now_ns)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    healthy=$("$DOCKER" ps -q --filter health=healthy | wc -l)
    RESULT[$name]=$(pct $(( d1 - d0 )) "$secs")
    bench_figure "daemon CPU, $N containers probing each second, %" "$name" "${RESULT[$name]}" %
    printf '%-8s %d containers probing every 1 s for %.0f s (%d healthy): daemon CPU %s%%  shims+runtime CPU %s%%  daemon RSS %s kB\n' \
        "$name" "$N" "$secs" "$healthy" "${RESULT[$name]}" "$(pct $(( s1 - s0 )) "$secs")" "$(rss_kb "$pid")"
    # shellcheck disable=SC2046
    "$DOCKER" rm -f $("$DOCKER" ps -aq) >/dev/null
    unset DOCKER_HOST
}

echo "CPU: 100% = one core; $(nproc) cores here"

# --- berthd ---------------------------------------------------------------
start_berthd "$WORK/berth" "$PARENT-berth" --bridge none
wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
measure berthd "$DAEMON_SOCK" "$DAEMON_PID" "berth-shim.*$WORK/berth/"

# --- dockerd (Debian docker.io, runc), private everything -------------------
if command -v dockerd >/dev/null; then
    start_dockerd "$WORK/docker" bhealth "$PARENT-docker"
    wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
    measure dockerd "$DAEMON_SOCK" "$DAEMON_PID" "containerd-shim.*-namespace bhealth$$ "
    awk -v b="${RESULT[berthd]}" -v d="${RESULT[dockerd]}" \
        'BEGIN { if (d > 0) printf "daemon CPU, berthd/dockerd(+containerd): %.2fx\n", b / d }'
else
    echo "dockerd not installed: berthd figures only"
fi
