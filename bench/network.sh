#!/usr/bin/env bash
# Networking figures through the real docker CLI, berthd (release build)
# side by side with Debian's dockerd when installed:
#   1. `docker run --rm busybox true` on the default bridge (veth, address,
#      hosts/resolv.conf and teardown included);
#   2. requests per second through a published port (berthd's in-process
#      userland proxy vs dockerd's docker-proxy), each request a new TCP
#      connection to busybox httpd, and the MB/s of one 100 MB download.
# Each engine gets a private socket, data/exec root, cgroup parent and its
# own bridge and subnet (never docker0 / /var/run/docker.sock); iptables is
# off for both so the comparison is proxy against proxy and nothing is left
# in the host's rules. No assertions: this is a measurement. Needs root.
#
#   bench/network.sh [RUNS]     (default 20 runs; BENCH_REQUESTS=2000)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/network.sh needs root" >&2; exit 1; }
command -v curl >/dev/null || { echo "bench/network.sh needs curl" >&2; exit 1; }

RUNS=${1:-${BENCH_RUNS:-20}}
REQUESTS=${BENCH_REQUESTS:-2000}
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

WORK=$(mktemp -d /tmp/bnet-bench.XXXXXX)
chmod 755 "$WORK"
PARENT=bnet-bench-$$
TAG=$(printf '%04x' $(( $$ & 0xffff )))
BR_BERTH=bnb$TAG
BR_DOCKER=bnd$TAG
PIDS=()
SOCKS=()
cleanup() {
    set +e
    for s in "${SOCKS[@]}"; do
        DOCKER_HOST="unix://$s" timeout 30 "$DOCKER" rm -f bnet-web >/dev/null 2>&1
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
    for b in "$BR_BERTH" "$BR_DOCKER"; do ip link del "$b" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT

now_ns() { date +%s%N; }
ms_since() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN { printf "%.3f\n", (b - a) / 1e6 }'; }
stats() { # file of ms values -> "median p10 p90"
    sort -n "$1" | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        p10 = v[int(NR * 0.1) + 1]; p90 = v[int(NR * 0.9) > 0 ? int(NR * 0.9) : 1]
        printf "%.1f %.1f %.1f\n", m, p10, p90 }'
}
wait_sock() { # socket pid
    for _ in $(seq 300); do
        [ -S "$1" ] && DOCKER_HOST="unix://$1" "$DOCKER" version >/dev/null 2>&1 && return 0
        kill -0 "$2" 2>/dev/null || { echo "daemon exited" >&2; return 1; }
        sleep 0.1
    done
    echo "daemon did not come up" >&2
    return 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

declare -A RUN REQ
measure() { # name socket
    local name=$1 sock=$2 t0 port
    export DOCKER_HOST="unix://$sock"
    "$DOCKER" load -q -i "$FIXTURES/busybox.tar" >/dev/null
    for _ in 1 2 3; do "$DOCKER" run --rm busybox true; done
    : >"$WORK/$name-run.ms"
    for _ in $(seq "$RUNS"); do
        t0=$(now_ns); "$DOCKER" run --rm busybox true; ms_since "$t0" >>"$WORK/$name-run.ms"
    done
    read -r med p10 p90 < <(stats "$WORK/$name-run.ms")
    RUN[$name]=$med

    port=$(free_port)
    "$DOCKER" run -d --name bnet-web -p "127.0.0.1:$port:80" busybox \
        sh -c 'dd if=/dev/zero of=/www.big bs=1M count=100 2>/dev/null; echo ok > /www.ok; exec httpd -f -p 80 -h /' >/dev/null
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/www.ok" && break; sleep 0.1; done
    t0=$(now_ns)
    # URL globbing: one curl, $REQUESTS requests; httpd closes each connection.
    curl -sf -o /dev/null "http://127.0.0.1:$port/www.ok?[1-$REQUESTS]"
    local ms rps mbs
    ms=$(ms_since "$t0")
    rps=$(awk -v n="$REQUESTS" -v ms="$ms" 'BEGIN { printf "%.0f", n / (ms / 1000) }')
    REQ[$name]=$rps
    mbs=$(curl -sf -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$port/www.big" | awk '{ printf "%.0f", $1 / 1048576 }')
    printf '%-8s docker run --rm busybox true (bridge): median %s ms (p10 %s, p90 %s)   published port: %s req/s (new connection each), 100 MB download %s MB/s\n' \
        "$name" "$med" "$p10" "$p90" "$rps" "$mbs"
    "$DOCKER" rm -f bnet-web >/dev/null
    unset DOCKER_HOST
}

# --- berthd ---------------------------------------------------------------
mkdir -p "$WORK/berth"
echo "{\"bridge\": \"$BR_BERTH\", \"bip\": \"10.213.$(( $$ % 200 )).1/24\", \"iptables\": false}" >"$WORK/berth/daemon.json"
"$BIN/berthd" -H "unix://$WORK/berth/berth.sock" --data-root "$WORK/berth/data" \
    --exec-root "$WORK/berth/exec" --pidfile "$WORK/berth/berthd.pid" \
    --config-file "$WORK/berth/daemon.json" --cgroup-parent "$PARENT-berth" \
    --log-level warn >"$WORK/berth/log" 2>&1 &
PIDS+=("$!")
SOCKS+=("$WORK/berth/berth.sock")
wait_sock "$WORK/berth/berth.sock" "$!"
measure berthd "$WORK/berth/berth.sock"

# --- dockerd (Debian docker.io, runc, docker-proxy), private everything ------
if command -v dockerd >/dev/null; then
    mkdir -p "$WORK/docker"
    echo '{}' >"$WORK/docker/daemon.json"
    # dockerd's -b wants an existing bridge: make it, dockerd configures it.
    ip link add "$BR_DOCKER" type bridge
    ip addr add "10.214.$(( $$ % 200 )).1/24" dev "$BR_DOCKER"
    ip link set "$BR_DOCKER" up
    dockerd -H "unix://$WORK/docker/docker.sock" --data-root "$WORK/docker/data" \
        --exec-root "$WORK/docker/exec" --pidfile "$WORK/docker/docker.pid" \
        --config-file "$WORK/docker/daemon.json" --bridge "$BR_DOCKER" --iptables=false \
        --ip-masq=false --ip-forward=false --storage-driver overlay2 \
        --cgroup-parent "$PARENT-docker" \
        --containerd-namespace "bnet$$" --containerd-plugins-namespace "bnetp$$" \
        >"$WORK/docker/log" 2>&1 &
    PIDS+=("$!")
    SOCKS+=("$WORK/docker/docker.sock")
    wait_sock "$WORK/docker/docker.sock" "$!"
    measure dockerd "$WORK/docker/docker.sock"
    awk -v b="${RUN[berthd]}" -v d="${RUN[dockerd]}" -v rb="${REQ[berthd]}" -v rd="${REQ[dockerd]}" \
        'BEGIN { printf "run --rm true, berthd/dockerd: %.2fx (target <= 0.25x)   published-port req/s, berthd/dockerd: %.2fx\n", b / d, rb / rd }'
else
    echo "dockerd not installed: berthd figures only"
fi
