#!/usr/bin/env bash
# Networking figures through the real docker CLI, berthd (release build)
# side by side with Debian's dockerd when installed:
#   1. `docker run --rm busybox true` on the default bridge (veth, address,
#      hosts/resolv.conf and teardown included);
#   2. requests per second through a published port (berthd's in-process
#      userland proxy vs dockerd's docker-proxy), each request a new TCP
#      connection to busybox httpd, and the MB/s of one 100 MB download;
#   3. the same through berthd's kernel forwarding (iptables DNAT, reached at
#      the bridge's own address); each line gives the daemon process's CPU time
#      during the download (dockerd's docker-proxy processes not counted).
# Each engine gets a private socket, data/exec root, cgroup parent and its
# own bridge and subnet (never docker0 / /var/run/docker.sock); iptables is
# off for both in 1-2 so the comparison is proxy against proxy; 3 runs a
# second berthd with iptables on and removes its chains at exit (dockerd's
# DNAT path is the same kernel path, so it is not run: its chains would stay
# in the host's rules). No assertions: this is a measurement. Needs root.
#
#   bench/network.sh [RUNS]     (default 20 runs; BENCH_REQUESTS=2000)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_need_root bench/network.sh
bench_need bench/network.sh curl

RUNS=${1:-${BENCH_RUNS:-20}}
REQUESTS=${BENCH_REQUESTS:-2000}
bench_bins berthd berth-shim berth-runtime
bench_fixtures
bench_workdir bnet-bench
PARENT=bnet-bench-$$
TAG=$(printf '%04x' $(( $$ & 0xffff )))
BR_BERTH=bnb$TAG
BR_DOCKER=bnd$TAG
BR_KERNEL=bnk$TAG
BRIDGES+=("$BR_BERTH" "$BR_DOCKER" "$BR_KERNEL")
# The published-port chains of the iptables-on berthd, and the jumps to them.
remove_port_chains() { # bridge
    local t c rule
    for t in nat filter; do
        iptables -w -t "$t" -S | grep -E -- "^-A .*-j BERTH-$1(-POST)?\$" | while read -r rule; do
            # shellcheck disable=SC2086
            iptables -w -t "$t" -D ${rule#-A }
        done
        iptables -w -t "$t" -S | grep -E -- "^-A [A-Z]+ .* $1( |\$)" | while read -r rule; do
            # shellcheck disable=SC2086
            iptables -w -t "$t" -D ${rule#-A }
        done
    done
    for c in "BERTH-$1" "BERTH-$1-POST"; do
        iptables -w -t nat -F "$c" 2>/dev/null; iptables -w -t nat -X "$c" 2>/dev/null
    done
    iptables -w -t filter -F "BERTH-$1" 2>/dev/null; iptables -w -t filter -X "BERTH-$1" 2>/dev/null
    return 0
}
cleanup_hook() { rm_containers_everywhere bnet-web; remove_port_chains "$BR_KERNEL"; }
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.0f", ($14 + $15) * 1000 / hz }' "/proc/$1/stat"; } # pid

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

declare -A RUN REQ
measure() { # name socket [host: publish on 0.0.0.0, connect there, skip run timing]
    local name=$1 sock=$2 host=${3:-} t0 port med=- p10=- p90=- bind=127.0.0.1: addr=127.0.0.1
    export DOCKER_HOST="unix://$sock"
    "$DOCKER" load -q -i "$FIXTURES/busybox.tar" >/dev/null
    if [ -z "$host" ]; then
        for _ in 1 2 3; do "$DOCKER" run --rm busybox true; done
        : >"$WORK/$name-run.ms"
        for _ in $(seq "$RUNS"); do
            time_into "$WORK/$name-run.ms" "$DOCKER" run --rm busybox true
        done
        read -r med p10 p90 < <(stats "$WORK/$name-run.ms")
        RUN[$name]=$med
    else
        bind= addr=$host
    fi

    port=$(free_port)
    "$DOCKER" run -d --name bnet-web -p "$bind$port:80" busybox \
        sh -c 'dd if=/dev/zero of=/www.big bs=1M count=100 2>/dev/null; echo ok > /www.ok; exec httpd -f -p 80 -h /' >/dev/null
    for _ in $(seq 100); do curl -sf --noproxy '*' -o /dev/null "http://$addr:$port/www.ok" && break; sleep 0.1; done
    t0=$(now_ns)
    # URL globbing: one curl, $REQUESTS requests; httpd closes each connection.
    curl -sf --noproxy '*' -o /dev/null "http://$addr:$port/www.ok?[1-$REQUESTS]"
    local ms rps mbs cpu0 cpu
    ms=$(ms_since "$t0")
    rps=$(awk -v n="$REQUESTS" -v ms="$ms" 'BEGIN { printf "%.0f", n / (ms / 1000) }')
    REQ[$name]=$rps
    cpu0=$(cpu_ms "$DAEMON_PID")
    mbs=$(curl -sf --noproxy '*' -o /dev/null -w '%{speed_download}' "http://$addr:$port/www.big" | awk '{ printf "%.0f", $1 / 1048576 }')
    cpu=$(( $(cpu_ms "$DAEMON_PID") - cpu0 ))
    bench_figure "docker run --rm true, bridge (CLI), ms" "$name" "$med" ms
    BETTER=higher bench_figure "published port, req/s" "$name" "$rps" req/s
    BETTER=higher bench_figure "published port download, MB/s" "$name" "$mbs" MB/s
    printf '%-8s docker run --rm busybox true (bridge): median %s ms (p10 %s, p90 %s)   published port: %s req/s (new connection each), 100 MB download %s MB/s, daemon CPU during it %s ms\n' \
        "$name" "$med" "$p10" "$p90" "$rps" "$mbs" "$cpu"
    "$DOCKER" rm -f bnet-web >/dev/null
    unset DOCKER_HOST
}

# --- berthd ---------------------------------------------------------------
mkdir -p "$WORK/berth"
echo "{\"bridge\": \"$BR_BERTH\", \"bip\": \"10.213.$(( $$ % 200 )).1/24\", \"iptables\": false}" >"$WORK/berth/daemon.json"
start_berthd "$WORK/berth" "$PARENT-berth"
wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
measure berthd "$DAEMON_SOCK"

# --- berthd, iptables on: the kernel forwards (DNAT at the bridge address) ----
mkdir -p "$WORK/kernel"
KNET=10.215.$(( $$ % 200 ))
echo "{\"bridge\": \"$BR_KERNEL\", \"bip\": \"$KNET.1/24\"}" >"$WORK/kernel/daemon.json"
start_berthd "$WORK/kernel" "$PARENT-kernel"
wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
measure kernel "$DAEMON_SOCK" "$KNET.1"
awk -v k="${REQ[kernel]}" -v u="${REQ[berthd]}" 'BEGIN { printf "published-port req/s, kernel DNAT / berthd userland proxy: %.2fx\n", k / u }'

# --- dockerd (Debian docker.io, runc, docker-proxy), private everything ------
if command -v dockerd >/dev/null; then
    # dockerd's -b wants an existing bridge: make it, dockerd configures it.
    ip link add "$BR_DOCKER" type bridge
    ip addr add "10.214.$(( $$ % 200 )).1/24" dev "$BR_DOCKER"
    ip link set "$BR_DOCKER" up
    DOCKERD_BRIDGE=$BR_DOCKER start_dockerd "$WORK/docker" bnet "$PARENT-docker"
    wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
    measure dockerd "$DAEMON_SOCK"
    awk -v b="${RUN[berthd]}" -v d="${RUN[dockerd]}" -v rb="${REQ[berthd]}" -v rd="${REQ[dockerd]}" \
        'BEGIN { printf "run --rm true, berthd/dockerd: %.2fx (target <= 0.25x)   published-port req/s, berthd/dockerd: %.2fx\n", b / d, rb / rd }'
else
    echo "dockerd not installed: berthd figures only"
fi
