#!/usr/bin/env bash
# berthd core figures: start-up time to the first /_ping, idle RSS (fresh
# and after a burst of requests), `docker version` / `docker info` latency
# through the real CLI and the raw API latency of /_ping and /info with curl
# -- for berthd (release build) and, when installed, Debian's dockerd (plus
# the containerd it starts) on a private socket, data root and exec root
# (never /var/run/docker.sock). Needs root. Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/daemon.sh needs root" >&2; exit 1; }

BIN=${BERTH_BIN_DIR:-$PWD/target/release}
[ -x "$BIN/berthd" ] || cargo build --release -p berthd
DOCKER=${DOCKER_CLI:-$(command -v /usr/local/bin/docker || command -v docker)}
N=${BENCH_RUNS:-20}

WORK=$(mktemp -d /tmp/bdaemon-bench.XXXXXX)
PIDS=()
NEW_HOST_PATHS=()
# dockerd creates these even with private roots; remove them if it did.
for p in /run/docker/plugins /run/docker /etc/docker/key.json /etc/docker; do
    [ -e "$p" ] || NEW_HOST_PATHS+=("$p")
done
cleanup() {
    set +e
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
}
trap cleanup EXIT

now_us() { echo $(( $(date +%s%N) / 1000 )); }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Microseconds until `GET /_ping` answers on the socket.
wait_ping() { # socket pid start_us
    for _ in $(seq 3000); do
        if curl -sf --unix-socket "$1" http://localhost/_ping >/dev/null 2>&1; then
            echo $(( $(now_us) - $3 ))
            return 0
        fi
        kill -0 "$2" 2>/dev/null || { echo "daemon exited" >&2; return 1; }
        sleep 0.005
    done
    echo "daemon did not come up" >&2
    return 1
}

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
    printf '%-22s start %6.1f ms  RSS idle %6s kB  after 300 req %6s kB  docker version %6s ms  docker info %6s ms  curl /_ping %5s ms  curl /info %5s ms\n' \
        "$name" "$(awk "BEGIN{print $startup/1000}")" "$idle" "$busy" "$v" "$i" "$p" "$info"
}

echo "median of $N runs each; RSS = VmRSS summed over the daemon's processes"

# --- berthd ---------------------------------------------------------------
mkdir -p "$WORK/berth"
echo '{}' > "$WORK/berth/daemon.json"
t0=$(now_us)
"$BIN/berthd" -H "unix://$WORK/berth/berth.sock" --data-root "$WORK/berth/data" \
    --exec-root "$WORK/berth/exec" --pidfile "$WORK/berth/berthd.pid" \
    --config-file "$WORK/berth/daemon.json" --cgroup-parent "berth-bench-$$" \
    --log-level warn >"$WORK/berth/log" 2>&1 &
BPID=$!
PIDS+=("$BPID")
up=$(wait_ping "$WORK/berth/berth.sock" "$BPID" "$t0")
measure berthd "$WORK/berth/berth.sock" "$up" "$BPID"

# --- dockerd (Debian docker.io), private everything -------------------------
if command -v dockerd >/dev/null; then
    mkdir -p "$WORK/docker"
    echo '{}' > "$WORK/docker/daemon.json"
    t0=$(now_us)
    dockerd -H "unix://$WORK/docker/docker.sock" --data-root "$WORK/docker/data" \
        --exec-root "$WORK/docker/exec" --pidfile "$WORK/docker/docker.pid" \
        --config-file "$WORK/docker/daemon.json" --bridge none --iptables=false \
        --ip-masq=false --ip-forward=false --storage-driver overlay2 \
        --containerd-namespace "bench$$" --containerd-plugins-namespace "benchp$$" \
        >"$WORK/docker/log" 2>&1 &
    DPID=$!
    PIDS+=("$DPID")
    up=$(wait_ping "$WORK/docker/docker.sock" "$DPID" "$t0")
    CPID=$(pgrep -P "$DPID" containerd || true)
    measure "dockerd + containerd" "$WORK/docker/docker.sock" "$up" "$DPID" ${CPID:+$CPID}
else
    echo "dockerd not installed: berthd figures only"
fi
