#!/usr/bin/env bash
# Registry figures: cold `docker pull` (image removed and pruned first) and
# `docker push` to a fresh repository of an image of 4 layers of poorly
# compressible data (~BENCH_IMAGE_MB MB, default 150), served by Debian's
# docker-registry on a free 127.0.0.1 port (own config and storage under
# WORK, never the system service) and filled with skopeo -- for berthd
# (release build) and, when installed, Debian's dockerd on a private
# socket and Debian's podman (daemonless; its own root, runroot and tmpdir
# under WORK, `--tls-verify=false`). Prints medians and the daemon's peak
# RSS during the pulls (for podman, the pulling process's own).
# Needs root. Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_need_root bench/pull.sh
bench_need bench/pull.sh /usr/bin/docker-registry skopeo python3
bench_bins berthd
SIZE_MB=${BENCH_IMAGE_MB:-150}
RUNS=${BENCH_RUNS:-3}
bench_workdir bpull-bench

cleanup_hook() {
    [ -n "${REG_PID:-}" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null
    return 0
}

# 4 layers of deterministic random files (10 MB each, same bytes every run).
per_layer=$(( SIZE_MB / 4 / 10 )); [ "$per_layer" -ge 1 ] || per_layer=1
layers=$(python3 -c "
import json
print(json.dumps([[{'name': 'l%d-f%02d' % (l, i), 'type': 'file', 'random': 10*1000*1000, 'seed': l*100+i}
                   for i in range($per_layer)] for l in range(4)]))")
python3 tests/py/images_mkarchive.py "{\"out\": \"$WORK/img.tar\", \"images\": [{\"tag\": \"bench/pull:1\", \"layers\": $layers}]}"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$WORK/registry.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$PORT
YML
/usr/bin/docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done
REG=127.0.0.1:$PORT
HOME=$WORK TMPDIR=$WORK skopeo copy -q --dest-tls-verify=false "docker-archive:$WORK/img.tar" "docker://$REG/bench/pull:1"
echo "image: 4 layers, $(du -sm "$WORK/registry" | cut -f1) MB stored in the registry (gzip)"

quiet() { "$@" >/dev/null; }

# Peak RSS (kB) of a pid while the given command runs.
peak_rss_during() { # pid command...
    local pid=$1 peak=0 r
    shift
    "$@" &
    local cmd=$!
    while kill -0 "$cmd" 2>/dev/null; do
        r=$(rss_kb "$pid"); [ "$r" -gt "$peak" ] && peak=$r
        sleep 0.05
    done
    wait "$cmd"
    echo "$peak"
}

measure() { # name socket pid
    local name=$1 pid=$3 pulls=() pushes=() peaks=() t0 n=0 first_push
    export DOCKER_HOST="unix://$2"
    # A loaded image has no compressed layers yet: the first push of it
    # compresses and uploads every layer (once: later pushes reuse both).
    "$DOCKER" load -q -i "$WORK/img.tar" >/dev/null
    "$DOCKER" tag bench/pull:1 "$REG/bench/$name-loaded:1"
    t0=$(now_ms)
    "$DOCKER" push -q "$REG/bench/$name-loaded:1" >/dev/null
    first_push=$(( $(now_ms) - t0 ))
    "$DOCKER" rmi -f bench/pull:1 "$REG/bench/$name-loaded:1" >/dev/null
    for _ in $(seq "$RUNS"); do
        "$DOCKER" rmi -f "$REG/bench/pull:1" >/dev/null 2>&1 || true
        "$DOCKER" image prune -af >/dev/null 2>&1 || true
        sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
        t0=$(now_ms)
        peaks+=("$(peak_rss_during "$pid" quiet "$DOCKER" pull -q "$REG/bench/pull:1")")
        pulls+=($(( $(now_ms) - t0 )))
        n=$(( n + 1 ))
        "$DOCKER" tag "$REG/bench/pull:1" "$REG/bench/$name-push$n:1"
        t0=$(now_ms)
        "$DOCKER" push -q "$REG/bench/$name-push$n:1" >/dev/null
        pushes+=($(( $(now_ms) - t0 )))
    done
    bench_figure "pull 4 layers (cold), ms" "$name" "$(printf '%s\n' "${pulls[@]}" | median)" ms
    bench_figure "push (layers mountable), ms" "$name" "$(printf '%s\n' "${pushes[@]}" | median)" ms
    bench_figure "first push of a loaded image, ms" "$name" "$first_push" ms
    printf '%-8s  pull %6s ms   push (layers mountable) %5s ms   (medians of %s; runs: pull %s/ push %s)   first push of the loaded image %s ms   peak RSS during pull %s kB\n' \
        "$name" "$(printf '%s\n' "${pulls[@]}" | median)" "$(printf '%s\n' "${pushes[@]}" | median)" "$RUNS" \
        "$(printf '%s ' "${pulls[@]}")" "$(printf '%s ' "${pushes[@]}")" "$first_push" "$(printf '%s\n' "${peaks[@]}" | sort -n | tail -1)"
    unset DOCKER_HOST
}

start_berthd "$WORK/berth"
wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
measure berthd "$DAEMON_SOCK" "$DAEMON_PID"

if command -v dockerd >/dev/null; then
    start_dockerd "$WORK/docker" bench
    wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
    measure dockerd "$DAEMON_SOCK" "$DAEMON_PID"
else
    echo "dockerd not installed: berthd figures only"
fi

# podman: no daemon, so the figures are of the CLI process doing the work;
# every path it keeps state in is under WORK.
PODMAN=(env HOME="$WORK/podman/home" XDG_CONFIG_HOME="$WORK/podman/home/.config"
    podman --root "$WORK/podman/root" --runroot "$WORK/podman/run"
    --tmpdir "$WORK/podman/tmp" --storage-driver overlay
    --events-backend none --cgroup-manager cgroupfs)
podman_in() { "${PODMAN[@]}" "$@"; }

measure_podman() {
    local pulls=() pushes=() peaks=() t0 n=0 out
    mkdir -p "$WORK/podman/home"
    run_tmpfs "$WORK/podman/run"
    for _ in $(seq "$RUNS"); do
        podman_in rmi -af >/dev/null 2>&1 || true
        sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
        t0=$(now_ms)
        out=$(/usr/bin/time -f '%M' "${PODMAN[@]}" pull -q --tls-verify=false "$REG/bench/pull:1" 2>&1 >/dev/null) \
            || { echo "podman pull failed: $out" >&2; return 1; }
        pulls+=($(( $(now_ms) - t0 )))
        peaks+=("$(tail -1 <<<"$out")")
        n=$(( n + 1 ))
        podman_in tag "$REG/bench/pull:1" "$REG/bench/podman-push$n:1"
        t0=$(now_ms)
        podman_in push -q --tls-verify=false "$REG/bench/podman-push$n:1" >/dev/null
        pushes+=($(( $(now_ms) - t0 )))
    done
    podman_in rmi -af >/dev/null 2>&1 || true
    bench_figure "pull 4 layers (cold), ms" podman "$(printf '%s\n' "${pulls[@]}" | median)" ms
    bench_figure "push (layers mountable), ms" podman "$(printf '%s\n' "${pushes[@]}" | median)" ms
    printf '%-8s  pull %6s ms   push (layers mountable) %5s ms   (medians of %s; runs: pull %s/ push %s)   peak RSS of podman pull %s kB\n' \
        podman "$(printf '%s\n' "${pulls[@]}" | median)" "$(printf '%s\n' "${pushes[@]}" | median)" "$RUNS" \
        "$(printf '%s ' "${pulls[@]}")" "$(printf '%s ' "${pushes[@]}")" "$(printf '%s\n' "${peaks[@]}" | sort -n | tail -1)"
}

if command -v podman >/dev/null && [ -x /usr/bin/time ]; then
    measure_podman
else
    echo "podman or /usr/bin/time not installed: no podman column"
fi
