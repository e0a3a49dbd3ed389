#!/usr/bin/env bash
# Exec figures through the real docker CLI: `docker exec C true` latency
# (and the same exec through the raw API with bench/apiload.rs `exec`: one
# keep-alive connection, create then start without an upgrade, as client
# libraries do it -- without the CLI's or curl's own start-up), and the throughput of `docker exec C cat /bigfile > /dev/null`
# for a 100 MB file -- for berthd (release build, berth-runtime) and, when
# installed, Debian's dockerd (runc) on a private socket, data root, exec
# root and cgroup parent (never /var/run/docker.sock). No assertions: this
# is a measurement. Needs root. Leaves nothing behind.
#
#   bench/exec.sh [RUNS]     (default 30 exec runs; BENCH_EXEC_MB=100)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_need_root bench/exec.sh

RUNS=${1:-${BENCH_RUNS:-30}}
SIZE_MB=${BENCH_EXEC_MB:-100}
bench_bins berthd berth-shim berth-runtime
bench_fixtures
bench_apiload
bench_workdir bexec-bench
PARENT=bexec-bench-$$
cleanup_hook() { rm_containers_everywhere bexec; }

declare -A RESULT
measure() { # name socket
    local name=$1 sock=$2 t0
    export DOCKER_HOST="unix://$sock"
    "$DOCKER" load -q -i "$FIXTURES/busybox.tar" >/dev/null
    "$DOCKER" run -d --name bexec --network none busybox sleep 100000 >/dev/null
    "$DOCKER" exec bexec dd if=/dev/urandom of=/bigfile bs=1M count="$SIZE_MB" 2>/dev/null
    for _ in 1 2 3; do "$DOCKER" exec bexec true; done
    : >"$WORK/$name-cli.ms"
    for _ in $(seq "$RUNS"); do
        time_into "$WORK/$name-cli.ms" "$DOCKER" exec bexec true
    done
    local amed ap10 ap90
    read -r amed ap10 ap90 < <("$APILOAD" "$sock" exec bexec "$RUNS")
    local tp=()
    for _ in 1 2 3; do
        t0=$(now_ns)
        "$DOCKER" exec bexec cat /bigfile >/dev/null
        tp+=("$(awk -v a="$t0" -v b="$(now_ns)" -v mb="$SIZE_MB" 'BEGIN { printf "%.0f", mb / ((b - a) / 1e9) }')")
    done
    # The bytes arrive intact, not just quickly.
    local inside outside
    inside=$("$DOCKER" exec bexec md5sum /bigfile | cut -d' ' -f1)
    outside=$("$DOCKER" exec bexec cat /bigfile | md5sum | cut -d' ' -f1)
    [ "$inside" = "$outside" ] || echo "WARNING: $name: cat through exec corrupted the data" >&2
    read -r med p10 p90 < <(stats "$WORK/$name-cli.ms")
    RESULT[$name]=$med
    bench_figure "docker exec true (CLI), ms" "$name" "$med" ms
    bench_figure "exec create+start (API), ms" "$name" "$amed" ms
    printf '%-8s docker exec true: median %s ms (p10 %s, p90 %s)   API create+start: median %s ms (p10 %s, p90 %s)   cat %s MB: %s MB/s\n' \
        "$name" "$med" "$p10" "$p90" "$amed" "$ap10" "$ap90" "$SIZE_MB" "$(printf '%s ' "${tp[@]}")"
    "$DOCKER" rm -f bexec >/dev/null
    unset DOCKER_HOST
}

# CLI start-up alone, the floor of any `docker ...` figure.
: >"$WORK/cli.ms"
for _ in $(seq "$RUNS"); do
    time_into "$WORK/cli.ms" "$DOCKER" --version >/dev/null
done
read -r cmed _ _ < <(stats "$WORK/cli.ms")
echo "docker CLI start-up alone (docker --version): median $cmed ms"

# --- berthd ---------------------------------------------------------------
start_berthd "$WORK/berth" "$PARENT-berth"
wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
measure berthd "$DAEMON_SOCK"

# --- dockerd (Debian docker.io, runc), private everything -------------------
if command -v dockerd >/dev/null; then
    start_dockerd "$WORK/docker" bexec "$PARENT-docker"
    wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
    measure dockerd "$DAEMON_SOCK"
    awk -v b="${RESULT[berthd]}" -v d="${RESULT[dockerd]}" \
        'BEGIN { printf "docker exec true, berthd/dockerd: %.2fx\n", b / d }'
else
    echo "dockerd not installed: berthd figures only"
fi
