#!/usr/bin/env bash
# Image store figures: `docker load` of a ~100 MB single-layer image
# (deterministic random content), `docker images` latency, `docker save`,
# and the daemon's idle RSS after loading busybox -- for berthd (release
# build) and, when installed, Debian's dockerd on a private socket, data
# root and exec root (never /var/run/docker.sock). Needs root. Leaves
# nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/images.sh needs root" >&2; exit 1; }

BIN=${BERTH_BIN_DIR:-$PWD/target/release}
[ -x "$BIN/berthd" ] || cargo build --release -p berthd
DOCKER=${DOCKER_CLI:-$(command -v /usr/local/bin/docker || command -v docker)}
FIXTURES=${BERTH_FIXTURES:-$PWD/target/fixtures}
if [ ! -f "$FIXTURES/busybox.tar" ]; then
    mkdir -p "$FIXTURES"
    rootfs-fixtures/build.sh "$FIXTURES" >/dev/null
fi
SIZE_MB=${BENCH_IMAGE_MB:-100}
RUNS=${BENCH_RUNS:-3}

WORK=$(mktemp -d /tmp/bimages-bench.XXXXXX)
PIDS=()
declare -A IMAGE_ID
cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
    done
    findmnt -rn -o TARGET | grep "^$WORK" | sort -r | xargs -r -n1 umount -l
    rm -rf "$WORK"
    # dockerd creates these even with private roots (plugin dir, trust key);
    # remove them if it did.
    for d in "${NEW_HOST_DIRS[@]}"; do
        if [ "${d%.json}" != "$d" ]; then rm -f "$d"; else rmdir "$d" 2>/dev/null; fi
    done
}
NEW_HOST_DIRS=()
for d in /run/docker/plugins /run/docker /etc/docker/key.json /etc/docker; do
    [ -e "$d" ] || NEW_HOST_DIRS+=("$d")
done
trap cleanup EXIT

# ~SIZE_MB of random files in one layer, 10 MB each, same bytes every run.
files=$(( SIZE_MB / 10 ))
entries=$(python3 -c "import json; print(json.dumps([{'name': 'data/f%02d' % i, 'type': 'file', 'random': 10*1000*1000, 'seed': i} for i in range($files)]))")
python3 tests/py/images_mkarchive.py "{\"out\": \"$WORK/big.tar\", \"images\": [{\"tag\": \"bench/big:1\", \"layers\": [[{\"name\": \"data\", \"type\": \"dir\"}]], \"extra\": 0}]}"
python3 tests/py/images_mkarchive.py "{\"out\": \"$WORK/big.tar\", \"images\": [{\"tag\": \"bench/big:1\", \"layers\": [$entries]}]}"
echo "image archive: $(du -m "$WORK/big.tar" | cut -f1) MB, one layer of $files x 10 MB random files"

now_ms() { date +%s%3N; }

wait_sock() { # socket pid
    for _ in $(seq 300); do
        [ -S "$1" ] && DOCKER_HOST="unix://$1" "$DOCKER" version >/dev/null 2>&1 && return 0
        kill -0 "$2" 2>/dev/null || { echo "daemon exited" >&2; return 1; }
        sleep 0.1
    done
    echo "daemon did not come up" >&2
    return 1
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

measure() { # name socket main-pid extra-rss-pids...
    local name=$1 sock=$2 pid=$3
    shift 3
    export DOCKER_HOST="unix://$sock"
    "$DOCKER" load -i "$FIXTURES/busybox.tar" >/dev/null
    sleep 2
    local rss
    rss=$(rss_kb "$pid")
    for p in "$@"; do rss=$(( rss + $(rss_kb "$p") )); done
    local ls_times=() t0
    for _ in $(seq 20); do
        t0=$(now_ms); "$DOCKER" images >/dev/null; ls_times+=($(( $(now_ms) - t0 )))
    done
    local ls_med
    ls_med=$(printf '%s\n' "${ls_times[@]}" | median)
    local load_times=() save_times=()
    for _ in $(seq "$RUNS"); do
        sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
        t0=$(now_ms); "$DOCKER" load -q -i "$WORK/big.tar" >/dev/null; load_times+=($(( $(now_ms) - t0 )))
        t0=$(now_ms); "$DOCKER" save bench/big:1 > "$WORK/saved-$name.tar"; save_times+=($(( $(now_ms) - t0 )))
        IMAGE_ID[$name]=$("$DOCKER" images -q bench/big:1)
        "$DOCKER" rmi bench/big:1 >/dev/null
    done
    printf '%-8s  idle RSS %6s kB   docker images %4s ms (median of 20)   docker load %sMB: %s ms   docker save: %s ms\n' \
        "$name" "$rss" "$ls_med" "$SIZE_MB" "$(printf '%s ' "${load_times[@]}")" "$(printf '%s ' "${save_times[@]}")"
    unset DOCKER_HOST
}

# --- berthd ---------------------------------------------------------------
mkdir -p "$WORK/berth"
echo '{}' > "$WORK/berth/daemon.json"
"$BIN/berthd" -H "unix://$WORK/berth/berth.sock" --data-root "$WORK/berth/data" \
    --exec-root "$WORK/berth/exec" --pidfile "$WORK/berth/berthd.pid" \
    --config-file "$WORK/berth/daemon.json" --log-level warn >"$WORK/berth/log" 2>&1 &
BPID=$!
PIDS+=("$BPID")
wait_sock "$WORK/berth/berth.sock" "$BPID"
measure berthd "$WORK/berth/berth.sock" "$BPID"

# --- dockerd (Debian docker.io), private everything -------------------------
if command -v dockerd >/dev/null; then
    mkdir -p "$WORK/docker"
    echo '{}' > "$WORK/docker/daemon.json"
    dockerd -H "unix://$WORK/docker/docker.sock" --data-root "$WORK/docker/data" \
        --exec-root "$WORK/docker/exec" --pidfile "$WORK/docker/docker.pid" \
        --config-file "$WORK/docker/daemon.json" --bridge none --iptables=false \
        --ip-masq=false --ip-forward=false --storage-driver overlay2 \
        --containerd-namespace "bench$$" --containerd-plugins-namespace "benchp$$" \
        >"$WORK/docker/log" 2>&1 &
    DPID=$!
    PIDS+=("$DPID")
    wait_sock "$WORK/docker/docker.sock" "$DPID"
    CPID=$(pgrep -P "$DPID" containerd || true)
    measure dockerd "$WORK/docker/docker.sock" "$DPID" ${CPID:+$CPID}
    # The archive berthd saved loads into dockerd with the same image ID.
    export DOCKER_HOST="unix://$WORK/docker/docker.sock"
    "$DOCKER" load -q -i "$WORK/saved-berthd.tar" >/dev/null
    echo "image ID in berthd: ${IMAGE_ID[berthd]}, in dockerd: ${IMAGE_ID[dockerd]}"
    echo "berthd's docker save loaded into dockerd: $("$DOCKER" images --format '{{.Repository}}:{{.Tag}} {{.ID}}' bench/big)"
    # And dockerd's own save loads into berthd with the same ID.
    "$DOCKER" tag busybox:latest bench/from-dockerd:1
    "$DOCKER" save bench/from-dockerd:1 > "$WORK/from-dockerd.tar"
    want=$("$DOCKER" images -q bench/from-dockerd:1)
    export DOCKER_HOST="unix://$WORK/berth/berth.sock"
    "$DOCKER" load -q -i "$WORK/from-dockerd.tar" >/dev/null
    echo "dockerd's docker save loaded into berthd: $("$DOCKER" images --format '{{.Repository}}:{{.Tag}} {{.ID}}' bench/from-dockerd) (dockerd: $want)"
    unset DOCKER_HOST
else
    echo "dockerd not installed: berthd figures only"
fi
