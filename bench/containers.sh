#!/usr/bin/env bash
# Container figures through the real docker CLI, berthd (release build) side
# by side with Debian's dockerd (and the containerd it starts) on a private
# socket, data root and exec root (never /var/run/docker.sock):
#   - `docker run --rm --network none busybox true`, median of BENCH_RUNS
#   - 20 `docker run -d` started in parallel, wall time
#   - RSS of one container supervisor (berth-shim / containerd-shim-runc-v2),
#     median over the 20
#   - daemon RSS with the 20 running (dockerd: dockerd + containerd)
# Needs root. Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/containers.sh needs root" >&2; exit 1; }

BIN=${BERTH_BIN_DIR:-$PWD/target/release}
[ -x "$BIN/berthd" ] || cargo build --release -p berthd -p berth-shim -p berth-runtime
DOCKER=${DOCKER_CLI:-$(command -v /usr/local/bin/docker || command -v docker)}
FIXTURES=${BERTH_FIXTURES:-$PWD/target/fixtures}
if [ ! -f "$FIXTURES/busybox.tar" ]; then
    mkdir -p "$FIXTURES"
    rootfs-fixtures/build.sh "$FIXTURES" >/dev/null
fi
RUNS=${BENCH_RUNS:-20}
PAR=${BENCH_PARALLEL:-20}

WORK=$(mktemp -d /tmp/bctr-bench.XXXXXX)
PIDS=()
NEW_HOST_PATHS=()
# dockerd creates these even with private roots; remove them if it did.
for p in /run/docker/plugins /run/docker /etc/docker/key.json /etc/docker; do
    [ -e "$p" ] || NEW_HOST_PATHS+=("$p")
done
cleanup() {
    set +e
    for sock in "$WORK"/*/*.sock; do
        [ -S "$sock" ] || continue
        ids=$(DOCKER_HOST="unix://$sock" "$DOCKER" ps -aq 2>/dev/null)
        [ -n "$ids" ] && DOCKER_HOST="unix://$sock" "$DOCKER" rm -f $ids >/dev/null 2>&1
    done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
    done
    findmnt -rn -o TARGET | grep "^$WORK" | sort -r | xargs -r -n1 umount -l
    rm -rf "$WORK"
    for p in "${NEW_HOST_PATHS[@]}"; do
        if [ -d "$p" ]; then rmdir "$p" 2>/dev/null; else rm -f "$p"; fi
    done
    for d in /sys/fs/cgroup/*/berth-bench-ctr-$$ /sys/fs/cgroup/*/dockerd-bench-ctr-$$; do
        [ -d "$d" ] && rmdir "$d" 2>/dev/null
    done
    true
}
trap cleanup EXIT
trap 'echo "bench/containers.sh failed at line $LINENO" >&2; tail -5 "$WORK"/*/log >&2' ERR

now_us() { echo $(( $(date +%s%N) / 1000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

wait_sock() { # socket pid
    for _ in $(seq 300); do
        [ -S "$1" ] && DOCKER_HOST="unix://$1" "$DOCKER" version >/dev/null 2>&1 && return 0
        kill -0 "$2" 2>/dev/null || { echo "daemon exited" >&2; return 1; }
        sleep 0.1
    done
    echo "daemon did not come up" >&2
    return 1
}

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
    local run_ms
    run_ms=$(printf '%s\n' "${times[@]}" | median | awk '{printf "%.1f", $1/1000}')

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
    printf '%-8s  run --rm true: %7s ms (median of %s)   %s parallel run -d: %6s ms   shim RSS: %6s kB (%s shims)   daemon RSS with %s running: %7s kB%s\n' \
        "$name" "$run_ms" "$RUNS" "$PAR" "$par_ms" "$shim_kb" "${#shims[@]}" "$running" "$daemon_kb" \
        "$([ -n "$extra" ] && echo " (+ $extra $extra_kb kB)")"
    "$DOCKER" rm -f $("$DOCKER" ps -aq) >/dev/null
    unset DOCKER_HOST
}

# --- berthd -------------------------------------------------------------
mkdir -p "$WORK/berthd"
echo '{}' >"$WORK/berthd/daemon.json"
"$BIN/berthd" -H "unix://$WORK/berthd/berth.sock" --data-root "$WORK/berthd/data" \
    --exec-root "$WORK/berthd/exec" --pidfile "$WORK/berthd/berthd.pid" \
    --config-file "$WORK/berthd/daemon.json" --cgroup-parent "berth-bench-ctr-$$" \
    --log-level warn >"$WORK/berthd/log" 2>&1 &
BPID=$!
PIDS+=("$BPID")
wait_sock "$WORK/berthd/berth.sock" "$BPID"
measure berthd "$WORK/berthd/berth.sock" "$BPID" berth-shim ""

# --- dockerd (Debian docker.io), private everything -----------------------
if command -v dockerd >/dev/null; then
    mkdir -p "$WORK/dockerd"
    echo '{}' >"$WORK/dockerd/daemon.json"
    dockerd -H "unix://$WORK/dockerd/docker.sock" --data-root "$WORK/dockerd/data" \
        --exec-root "$WORK/dockerd/exec" --pidfile "$WORK/dockerd/docker.pid" \
        --config-file "$WORK/dockerd/daemon.json" --bridge none --iptables=false \
        --ip-masq=false --ip-forward=false --storage-driver overlay2 \
        --cgroup-parent "dockerd-bench-ctr-$$" \
        --containerd-namespace "bench$$" --containerd-plugins-namespace "benchp$$" \
        >"$WORK/dockerd/log" 2>&1 &
    DPID=$!
    PIDS+=("$DPID")
    wait_sock "$WORK/dockerd/docker.sock" "$DPID"
    measure dockerd "$WORK/dockerd/docker.sock" "$DPID" containerd-shim "containerd"
else
    echo "dockerd not installed: berthd figures only"
fi
