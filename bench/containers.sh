#!/usr/bin/env bash
# Container figures through the real docker CLI, berthd (release build) side
# by side with Debian's dockerd (and the containerd it starts) on a private
# socket, data root and exec root (never /var/run/docker.sock), and podman's
# Docker-compatible service (`podman system service`, runc, conmon per
# container) the same way where podman is installed:
#   - `docker run --rm --network none busybox true`, median of BENCH_RUNS
#   - the same through the API without the CLI (bench/apiload.rs `run`:
#     create, start, wait, delete on one keep-alive connection), median
#   - 20 `docker run -d` started in parallel, wall time
#   - RSS of one container supervisor (berth-shim / containerd-shim-runc-v2),
#     median over the 20
#   - daemon RSS with the 20 running (dockerd: dockerd + containerd)
# Needs root. Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_need_root bench/containers.sh
bench_bins berthd berth-shim berth-runtime
bench_fixtures
bench_apiload
RUNS=${BENCH_RUNS:-20}
PAR=${BENCH_PARALLEL:-20}
bench_workdir bctr-bench
# Every container in both engines goes before the daemons stop.
cleanup_hook() { rm_containers_everywhere; }
trap 'echo "bench/containers.sh failed at line $LINENO" >&2; tail -5 "$WORK"/*/log >&2' ERR

# Pids of processes named $1 whose command line mentions $2.
pids_of() {
    for p in /proc/[0-9]*; do
        [ "$(cat "$p/comm" 2>/dev/null)" = "$1" ] || continue
        tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "$2" && basename "$p"
    done
    true
}

measure() { # name socket daemon-pid shim-comm extra-daemon-comm
    local name=$1 pid=$3 shim=$4 extra=$5
    export DOCKER_HOST="unix://$2"
    "$DOCKER" load -i "$FIXTURES/busybox.tar" >/dev/null
    "$DOCKER" run --rm --network none busybox true >/dev/null # warm-up
    local times=() t0
    for _ in $(seq "$RUNS"); do
        t0=$(now_us)
        "$DOCKER" run --rm --network none busybox true
        times+=($(( $(now_us) - t0 )))
    done
    local run_ms api_ms
    run_ms=$(printf '%s\n' "${times[@]}" | median | awk '{printf "%.1f", $1/1000}')
    read -r api_ms _ _ < <("$APILOAD" "$2" run busybox "$RUNS")

    t0=$(now_us)
    local jobs=() j
    for i in $(seq "$PAR"); do
        "$DOCKER" run -d --network none --name "par$i" busybox sleep 1000 >/dev/null &
        jobs+=($!)
    done
    for j in "${jobs[@]}"; do wait "$j" || echo "$name: a parallel docker run failed" >&2; done
    local par_ms=$(( ($(now_us) - t0) / 1000 ))
    local running
    running=$("$DOCKER" ps -q | wc -l)
    [ "$running" = "$PAR" ] || echo "$name: $running of $PAR containers running" >&2

    local shims=() s
    for s in $(pids_of "$shim" "$WORK/$name"); do shims+=("$(rss_kb "$s")"); done
    local shim_kb=0
    [ "${#shims[@]}" -gt 0 ] && shim_kb=$(printf '%s\n' "${shims[@]}" | median)
    local daemon_kb
    daemon_kb=$(rss_kb "$pid")
    local extra_kb=0 e
    if [ -n "$extra" ]; then
        for e in $(pids_of "$extra" "$WORK/$name"); do extra_kb=$(( extra_kb + $(rss_kb "$e") )); done
    fi
    bench_figure "docker run --rm true (CLI), ms" "$name" "$run_ms" ms
    bench_figure "create+start+wait+delete true (API), ms" "$name" "$api_ms" ms
    bench_figure "$PAR parallel run -d, ms" "$name" "$par_ms" ms
    bench_figure "shim RSS per container, kB" "$name" "$shim_kb" kB
    bench_figure "daemon RSS with $running running, kB" "$name" "$((daemon_kb + extra_kb))" kB
    printf '%-8s  API create+start+wait+delete: %6s ms\n' "$name" "$api_ms"
    printf '%-8s  run --rm true: %7s ms (median of %s)   %s parallel run -d: %6s ms   shim RSS: %6s kB (%s shims)   daemon RSS with %s running: %7s kB%s\n' \
        "$name" "$run_ms" "$RUNS" "$PAR" "$par_ms" "$shim_kb" "${#shims[@]}" "$running" "$daemon_kb" \
        "$([ -n "$extra" ] && echo " (+ $extra $extra_kb kB)")"
    "$DOCKER" rm -f $("$DOCKER" ps -aq) >/dev/null
    unset DOCKER_HOST
}

# --- berthd -------------------------------------------------------------
start_berthd "$WORK/berthd" "berth-bench-ctr-$$"
wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
measure berthd "$DAEMON_SOCK" "$DAEMON_PID" berth-shim ""

# --- dockerd (Debian docker.io), private everything -----------------------
if command -v dockerd >/dev/null; then
    start_dockerd "$WORK/dockerd" bench "dockerd-bench-ctr-$$"
    wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
    measure dockerd "$DAEMON_SOCK" "$DAEMON_PID" containerd-shim "containerd"
else
    echo "dockerd not installed: berthd figures only"
fi

# --- podman system service, private everything ------------------------------
if start_podman "$WORK/podman"; then
    if wait_sock "$DAEMON_SOCK" "$DAEMON_PID"; then
        "${PODMAN[@]}" load -q -i "$FIXTURES/busybox.tar" >/dev/null
        "${PODMAN[@]}" tag localhost/busybox:latest docker.io/library/busybox:latest
        measure podman "$DAEMON_SOCK" "$DAEMON_PID" conmon ""
    else
        echo "podman: its API service did not come up here: $(tail -3 "$WORK/podman/log")"
    fi
else
    echo "podman not installed: no podman figures"
fi
