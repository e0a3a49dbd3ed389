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
[ "$(id -u)" = 0 ] || { echo "bench/logs.sh needs root" >&2; exit 1; }

BIN=${BERTH_BIN_DIR:-$PWD/target/release}
[ -x "$BIN/berthd" ] || cargo build --release -p berthd -p berth-shim -p berth-runtime
DOCKER=${DOCKER_CLI:-$(command -v /usr/local/bin/docker || command -v docker)}
FIXTURES=${BERTH_FIXTURES:-$PWD/target/fixtures}
if [ ! -f "$FIXTURES/busybox.tar" ]; then
    mkdir -p "$FIXTURES"
    rootfs-fixtures/build.sh "$FIXTURES" >/dev/null
fi
LOG_MB=${BENCH_LOG_MB:-100}
RUNS=${BENCH_RUNS:-3}
BYTES=$(( LOG_MB * 1024 * 1024 ))
# 88-byte lines.
LINE='the quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstuvwxyz ABCDE'

WORK=$(mktemp -d /tmp/blogs-bench.XXXXXX)
PIDS=()
cleanup() {
    set +e
    for sock in "$WORK"/*/*.sock; do
        [ -S "$sock" ] && DOCKER_HOST="unix://$sock" "$DOCKER" rm -f biglog >/dev/null 2>&1
    done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
    done
    findmnt -rn -o TARGET | grep "^$WORK" | sort -r | xargs -r -n1 umount -l
    rm -rf "$WORK"
    # The engines' (now empty) cgroup parents.
    for d in /sys/fs/cgroup/*/"berth-bench-logs-$$" /sys/fs/cgroup/*/"dockerd-bench-logs-$$" \
             /sys/fs/cgroup/unified/"berth-bench-logs-$$" /sys/fs/cgroup/unified/"dockerd-bench-logs-$$"; do
        [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    return 0
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

wait_sock() { # socket pid
    for _ in $(seq 300); do
        [ -S "$1" ] && DOCKER_HOST="unix://$1" "$DOCKER" version >/dev/null 2>&1 && return 0
        kill -0 "$2" 2>/dev/null || { echo "daemon exited" >&2; return 1; }
        sleep 0.1
    done
    echo "daemon did not come up" >&2
    return 1
}

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
mkdir -p "$WORK/berthd"
echo '{}' > "$WORK/berthd/daemon.json"
"$BIN/berthd" -H "unix://$WORK/berthd/berth.sock" --data-root "$WORK/berthd/data" \
    --exec-root "$WORK/berthd/exec" --pidfile "$WORK/berthd/berthd.pid" \
    --config-file "$WORK/berthd/daemon.json" --cgroup-parent "berth-bench-logs-$$" \
    --log-level warn >"$WORK/berthd/log" 2>&1 &
BPID=$!
PIDS+=("$BPID")
wait_sock "$WORK/berthd/berth.sock" "$BPID"
measure berthd "$WORK/berthd/berth.sock"

# --- dockerd (Debian docker.io), private everything -------------------------
if command -v dockerd >/dev/null; then
    mkdir -p "$WORK/dockerd"
    echo '{}' > "$WORK/dockerd/daemon.json"
    dockerd -H "unix://$WORK/dockerd/docker.sock" --data-root "$WORK/dockerd/data" \
        --exec-root "$WORK/dockerd/exec" --pidfile "$WORK/dockerd/docker.pid" \
        --config-file "$WORK/dockerd/daemon.json" --bridge none --iptables=false \
        --ip-masq=false --ip-forward=false --storage-driver overlay2 \
        --cgroup-parent "dockerd-bench-logs-$$" \
        --containerd-namespace "bench$$" --containerd-plugins-namespace "benchp$$" \
        >"$WORK/dockerd/log" 2>&1 &
    DPID=$!
    PIDS+=("$DPID")
    wait_sock "$WORK/dockerd/docker.sock" "$DPID"
    measure dockerd "$WORK/dockerd/docker.sock"
else
    echo "dockerd not installed: berthd figures only"
fi
