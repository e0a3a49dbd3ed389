#!/usr/bin/env bash
# Image store figures: `docker load` of a ~100 MB single-layer image
# (deterministic random content), `docker images` latency, `docker save`,
# and the daemon's idle RSS after loading busybox -- for berthd (release
# build) and, when installed, Debian's dockerd on a private socket, data
# root and exec root (never /var/run/docker.sock). Needs root. Leaves
# nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_need_root bench/images.sh
bench_bins berthd
bench_fixtures
SIZE_MB=${BENCH_IMAGE_MB:-100}
RUNS=${BENCH_RUNS:-3}
bench_workdir bimages-bench
declare -A IMAGE_ID

# ~SIZE_MB of random files in one layer, 10 MB each, same bytes every run.
files=$(( SIZE_MB / 10 ))
entries=$(python3 -c "import json; print(json.dumps([{'name': 'data/f%02d' % i, 'type': 'file', 'random': 10*1000*1000, 'seed': i} for i in range($files)]))")
python3 tests/py/images_mkarchive.py "{\"out\": \"$WORK/big.tar\", \"images\": [{\"tag\": \"bench/big:1\", \"layers\": [[{\"name\": \"data\", \"type\": \"dir\"}]], \"extra\": 0}]}"
python3 tests/py/images_mkarchive.py "{\"out\": \"$WORK/big.tar\", \"images\": [{\"tag\": \"bench/big:1\", \"layers\": [$entries]}]}"
echo "image archive: $(du -m "$WORK/big.tar" | cut -f1) MB, one layer of $files x 10 MB random files"

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
start_berthd "$WORK/berth"
wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
measure berthd "$DAEMON_SOCK" "$DAEMON_PID"

# --- dockerd (Debian docker.io), private everything -------------------------
if command -v dockerd >/dev/null; then
    start_dockerd "$WORK/docker" bench
    wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
    CPID=$(pgrep -P "$DAEMON_PID" containerd || true)
    measure dockerd "$DAEMON_SOCK" "$DAEMON_PID" ${CPID:+$CPID}
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
