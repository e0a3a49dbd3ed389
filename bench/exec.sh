#!/usr/bin/env bash
# Exec figures through the real docker CLI: `docker exec C true` latency
# (and the same exec through the raw API with curl, without the CLI's own
# start-up), and the throughput of `docker exec C cat /bigfile > /dev/null`
# for a 100 MB file -- for berthd (release build, berth-runtime) and, when
# installed, Debian's dockerd (runc) on a private socket, data root, exec
# root and cgroup parent (never /var/run/docker.sock). No assertions: this
# is a measurement. Needs root. Leaves nothing behind.
#
#   bench/exec.sh [RUNS]     (default 30 exec runs; BENCH_EXEC_MB=100)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/exec.sh needs root" >&2; exit 1; }
command -v curl >/dev/null || { echo "bench/exec.sh needs curl" >&2; exit 1; }

RUNS=${1:-${BENCH_RUNS:-30}}
SIZE_MB=${BENCH_EXEC_MB:-100}
BIN=${BERTH_BIN_DIR:-$PWD/target/release}
if [ ! -x "$BIN/berthd" ] || [ ! -x "$BIN/berth-shim" ] || [ ! -x "$BIN/berth-runtime" ]; then
    cargo build --release -p berthd -p berth-shim -p berth-runtime >&2
fi
DOCKER=${DOCKER_CLI:-$(command -v /usr/local/bin/docker || command -v docker)}
FIXTURES=${BERTH_FIXTURES:-$PWD/target/fixtures}
if [ ! -f "$FIXTURES/busybox.tar" ]; then
    mkdir -p "$FIXTURES"
    rootfs-fixtures/build.sh "$FIXTURES" >/dev/null
fi

WORK=$(mktemp -d /tmp/bexec-bench.XXXXXX)
chmod 755 "$WORK"
PARENT=bexec-bench-$$
PIDS=()
SOCKS=()
cleanup() {
    set +e
    for s in "${SOCKS[@]}"; do
        DOCKER_HOST="unix://$s" timeout 30 "$DOCKER" rm -f bexec >/dev/null 2>&1
    done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
    done
    findmnt -rn -o TARGET | grep "^$WORK" | sort -r | xargs -r -n1 umount -l
    for d in /sys/fs/cgroup/*/"$PARENT"* /sys/fs/cgroup/"$PARENT"* /sys/fs/cgroup/unified/"$PARENT"*; do
        [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

now_ns() { date +%s%N; }

wait_sock() { # socket pid
    for _ in $(seq 300); do
        [ -S "$1" ] && DOCKER_HOST="unix://$1" "$DOCKER" version >/dev/null 2>&1 && return 0
        kill -0 "$2" 2>/dev/null || { echo "daemon exited" >&2; return 1; }
        sleep 0.1
    done
    echo "daemon did not come up" >&2
    return 1
}

stats() { # file of ms values -> "median p10 p90"
    sort -n "$1" | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        p10 = v[int(NR * 0.1) + 1]; p90 = v[int(NR * 0.9) > 0 ? int(NR * 0.9) : 1]
        printf "%.1f %.1f %.1f\n", m, p10, p90 }'
}

ms_since() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN { printf "%.3f\n", (b - a) / 1e6 }'; }

# One exec through the API: create, then start without an upgrade (the
# output is the response body), as a client library does it.
api_exec() { # socket
    local id
    id=$(curl -sf --unix-socket "$1" -X POST -H 'Content-Type: application/json' \
        -d '{"Cmd":["true"],"AttachStdout":true,"AttachStderr":true}' \
        http://localhost/v1.41/containers/bexec/exec | sed -E 's/.*"Id":"([0-9a-f]+)".*/\1/')
    curl -sf --unix-socket "$1" -X POST -H 'Content-Type: application/json' -d '{}' \
        "http://localhost/v1.41/exec/$id/start" >/dev/null
}

declare -A RESULT
measure() { # name socket
    local name=$1 sock=$2 t0
    export DOCKER_HOST="unix://$sock"
    "$DOCKER" load -q -i "$FIXTURES/busybox.tar" >/dev/null
    "$DOCKER" run -d --name bexec --network none busybox sleep 100000 >/dev/null
    "$DOCKER" exec bexec dd if=/dev/urandom of=/bigfile bs=1M count="$SIZE_MB" 2>/dev/null
    for _ in 1 2 3; do "$DOCKER" exec bexec true; api_exec "$sock"; done
    : >"$WORK/$name-cli.ms"
    : >"$WORK/$name-api.ms"
    for _ in $(seq "$RUNS"); do
        t0=$(now_ns); "$DOCKER" exec bexec true; ms_since "$t0" >>"$WORK/$name-cli.ms"
        t0=$(now_ns); api_exec "$sock"; ms_since "$t0" >>"$WORK/$name-api.ms"
    done
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
    read -r amed ap10 ap90 < <(stats "$WORK/$name-api.ms")
    RESULT[$name]=$med
    printf '%-8s docker exec true: median %s ms (p10 %s, p90 %s)   API create+start: median %s ms (p10 %s, p90 %s)   cat %s MB: %s MB/s\n' \
        "$name" "$med" "$p10" "$p90" "$amed" "$ap10" "$ap90" "$SIZE_MB" "$(printf '%s ' "${tp[@]}")"
    "$DOCKER" rm -f bexec >/dev/null
    unset DOCKER_HOST
}

# CLI start-up alone, the floor of any `docker ...` figure.
: >"$WORK/cli.ms"
for _ in $(seq "$RUNS"); do
    t0=$(now_ns); "$DOCKER" --version >/dev/null; ms_since "$t0" >>"$WORK/cli.ms"
done
read -r cmed _ _ < <(stats "$WORK/cli.ms")
echo "docker CLI start-up alone (docker --version): median $cmed ms"

# --- berthd ---------------------------------------------------------------
mkdir -p "$WORK/berth"
echo '{}' >"$WORK/berth/daemon.json"
"$BIN/berthd" -H "unix://$WORK/berth/berth.sock" --data-root "$WORK/berth/data" \
    --exec-root "$WORK/berth/exec" --pidfile "$WORK/berth/berthd.pid" \
    --config-file "$WORK/berth/daemon.json" --cgroup-parent "$PARENT-berth" \
    --log-level warn >"$WORK/berth/log" 2>&1 &
PIDS+=("$!")
SOCKS+=("$WORK/berth/berth.sock")
wait_sock "$WORK/berth/berth.sock" "$!"
measure berthd "$WORK/berth/berth.sock"

# --- dockerd (Debian docker.io, runc), private everything -------------------
if command -v dockerd >/dev/null; then
    mkdir -p "$WORK/docker"
    echo '{}' >"$WORK/docker/daemon.json"
    dockerd -H "unix://$WORK/docker/docker.sock" --data-root "$WORK/docker/data" \
        --exec-root "$WORK/docker/exec" --pidfile "$WORK/docker/docker.pid" \
        --config-file "$WORK/docker/daemon.json" --bridge none --iptables=false \
        --ip-masq=false --ip-forward=false --storage-driver overlay2 \
        --cgroup-parent "$PARENT-docker" \
        --containerd-namespace "bexec$$" --containerd-plugins-namespace "bexecp$$" \
        >"$WORK/docker/log" 2>&1 &
    PIDS+=("$!")
    SOCKS+=("$WORK/docker/docker.sock")
    wait_sock "$WORK/docker/docker.sock" "$!"
    measure dockerd "$WORK/docker/docker.sock"
    awk -v b="${RESULT[berthd]}" -v d="${RESULT[dockerd]}" \
        'BEGIN { printf "docker exec true, berthd/dockerd: %.2fx\n", b / d }'
else
    echo "dockerd not installed: berthd figures only"
fi
