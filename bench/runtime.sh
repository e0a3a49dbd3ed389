#!/usr/bin/env bash
# Container start-to-exit time: `berth-runtime run` against `runc run` (and
# `crun run` where Debian's crun works on this host) on the same busybox
# bundle and the same config.json (process `true`, private cgroup parent),
# alternating one run of each so all see the same machine state. Then the
# same through containerd: `ctr run --rm` of the busybox image on a private
# containerd, containerd-shim-runc-v2 with berth-runtime or runc as
# BinaryName, alternating. Prints medians (and p10/p90) and the ratios. No
# assertions: this is a measurement. Needs root. Leaves nothing behind.
#
#   bench/runtime.sh [RUNS]        (default 50; BERTH_BENCH_RUNS also works)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_need_root bench/runtime.sh
bench_need bench/runtime.sh jq

RUNS=${1:-${BERTH_BENCH_RUNS:-50}}
bench_bins berth-runtime
BERTH=$BIN/berth-runtime
RUNC=$(command -v runc || true)
CRUN=$(command -v crun || true)
CONTAINERD=$(command -v containerd || true)
CTR=$(command -v ctr || true)
bench_fixtures

bench_workdir berth-rt-bench
# State roots on tmpfs (BERTH_BENCH_STATE_DIR, default /dev/shm), as /run is
# on a standard host, so the figures compare runtimes, not the fsync latency
# of whatever disk holds /tmp. Both runtimes get the same place.
STATE=$(mktemp -d "${BERTH_BENCH_STATE_DIR:-/dev/shm}/berth-rt-bench.XXXXXX")
PARENT=berth-rt-bench-$$
# runc leaves the parent (and berth removes it when empty): bench_cleanup
# removes it either way.
CGROUP_PARENTS+=("$PARENT")
# The shim's socket dir is hard-wired; removed again if we made it.
SHIM_DIR_NEW=
[ -d /run/containerd/s ] || SHIM_DIR_NEW=1
cleanup_hook() {
    for root in "$STATE/root-berth" "$STATE/root-runc" "$STATE/root-crun"; do
        [ -d "$root" ] || continue
        for id in $(ls "$root" 2>/dev/null); do
            case $root in
                *berth) "$BERTH" --root "$root" delete --force "$id" >/dev/null 2>&1 ;;
                *runc) "$RUNC" --root "$root" delete --force "$id" >/dev/null 2>&1 ;;
                *crun) "$CRUN" --root "$root" delete --force "$id" >/dev/null 2>&1 ;;
            esac
        done
    done
    rm -rf "$STATE"
    if [ -n "$SHIM_DIR_NEW" ]; then rmdir /run/containerd/s /run/containerd 2>/dev/null; fi
}

BUNDLE=$WORK/bundle
mkdir -p "$BUNDLE/rootfs" "$STATE/root-berth" "$STATE/root-runc" "$STATE/root-crun"
cp -a "$FIXTURES/busybox/rootfs/." "$BUNDLE/rootfs/"
"$BERTH" spec --bundle "$BUNDLE"
# ociVersion 1.0.2: crun 1.8 refuses the 1.2.0 of berth's template ("unknown
# version specified") before it looks at anything else; runc and berth take
# either.
jq '.ociVersion = "1.0.2" | .process.terminal = false | .process.args = ["true"] | .linux.cgroupsPath = null' \
    "$BUNDLE/config.json" >"$WORK/template.json"

# Milliseconds (3 decimals) that one `run` takes, start to exit.
time_run() { # runtime root id
    local rt=$1 root=$2 id=$3 t0
    jq --arg p "/$PARENT/$id" '.linux.cgroupsPath = $p' "$WORK/template.json" >"$BUNDLE/config.json"
    t0=$(now_ns)
    "$rt" --root "$root" run --bundle "$BUNDLE" "$id" </dev/null >/dev/null 2>"$WORK/err" ||
        { echo "$rt run failed: $(cat "$WORK/err")" >&2; return 1; }
    ms_since "$t0"
}

# One warm-up run each (page cache, first cgroup creation), not counted.
time_run "$BERTH" "$STATE/root-berth" warm-berth >/dev/null
[ -n "$RUNC" ] && time_run "$RUNC" "$STATE/root-runc" warm-runc >/dev/null
# crun 1.8 may refuse this host (hybrid cgroups: v1 controllers plus a
# cgroup2 mount): say so and leave it out rather than fail.
CRUN_NOTE=
if [ -n "$CRUN" ] && ! time_run "$CRUN" "$STATE/root-crun" warm-crun >/dev/null 2>"$WORK/crun.err"; then
    CRUN_NOTE="crun does not run here: $(tail -1 "$WORK/crun.err")"
    CRUN=
fi

: >"$WORK/berth.ms"
: >"$WORK/runc.ms"
: >"$WORK/crun.ms"
for i in $(seq "$RUNS"); do
    time_run "$BERTH" "$STATE/root-berth" "b$i-$$" >>"$WORK/berth.ms"
    [ -n "$RUNC" ] && time_run "$RUNC" "$STATE/root-runc" "r$i-$$" >>"$WORK/runc.ms"
    [ -n "$CRUN" ] && time_run "$CRUN" "$STATE/root-crun" "c$i-$$" >>"$WORK/crun.ms"
done

read -r bm b10 b90 <<<"$(stats "$WORK/berth.ms" 2)"
echo "runtime run (busybox 'true', $RUNS runs each, state on $(findmnt -n -o FSTYPE -T "$STATE" | head -1), ms): median / p10 / p90"
printf "  berth-runtime  %8s %8s %8s\n" "$bm" "$b10" "$b90"
bench_figure "runtime run of true, ms" berth-runtime "$bm" ms
if [ -n "$RUNC" ]; then
    read -r rm r10 r90 <<<"$(stats "$WORK/runc.ms" 2)"
    printf "  runc           %8s %8s %8s   (%s)\n" "$rm" "$r10" "$r90" "$("$RUNC" --version | head -1)"
    bench_figure "runtime run of true, ms" runc "$rm" ms
    echo "  ratio berth/runc (median): $(awk -v a="$bm" -v b="$rm" 'BEGIN { printf "%.2f", a / b }')  (target <= 0.50)"
else
    echo "  runc is not installed: no comparison"
fi
if [ -n "$CRUN" ]; then
    read -r cm c10 c90 <<<"$(stats "$WORK/crun.ms" 2)"
    printf "  crun           %8s %8s %8s   (%s)\n" "$cm" "$c10" "$c90" "$("$CRUN" --version | head -1)"
    bench_figure "runtime run of true, ms" crun "$cm" ms
elif [ -n "$CRUN_NOTE" ]; then
    echo "  $CRUN_NOTE"
else
    echo "  crun is not installed: no comparison"
fi

# --- Through containerd: ctr run --rm, shim runc v2, BinaryName berth vs runc.
if [ -z "$CONTAINERD" ] || [ -z "$CTR" ] || [ -z "$RUNC" ]; then
    echo "containerd, ctr or runc is not installed: no containerd comparison"
    exit 0
fi
CD=$WORK/containerd
NS=berth-rt-bench-ctr-$$
CGROUP_PARENTS+=("$NS")
mkdir -p "$CD/root" "$CD/state" "$CD/fifo" "$STATE/ctr-berth" "$STATE/ctr-runc"
cat >"$CD/config.toml" <<EOF
version = 2
root = "$CD/root"
state = "$CD/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CD/containerd.sock"
[ttrpc]
  address = "$CD/containerd.sock.ttrpc"
EOF
"$CONTAINERD" --config "$CD/config.toml" >"$CD/log" 2>&1 &
PIDS+=("$!")
ctr_() { "$CTR" --address "$CD/containerd.sock" --namespace "$NS" "$@"; }
for _ in $(seq 100); do ctr_ version >/dev/null 2>&1 && break; sleep 0.1; done
ctr_ images import "$FIXTURES/busybox.tar" >/dev/null
IMAGE=docker.io/library/busybox:latest

time_ctr() { # runtime-binary runtime-root id
    local t0
    t0=$(now_ns)
    ctr_ run --rm --runtime io.containerd.runc.v2 --runc-binary "$1" --runc-root "$2" \
        --fifo-dir "$CD/fifo" "$IMAGE" "$3" true </dev/null >/dev/null 2>"$WORK/err" ||
        { echo "ctr run with $1 failed: $(cat "$WORK/err")" >&2; return 1; }
    ms_since "$t0"
}
time_ctr "$BERTH" "$STATE/ctr-berth" warm-berth >/dev/null
time_ctr "$RUNC" "$STATE/ctr-runc" warm-runc >/dev/null
: >"$WORK/ctr-berth.ms"
: >"$WORK/ctr-runc.ms"
for i in $(seq "$RUNS"); do
    time_ctr "$BERTH" "$STATE/ctr-berth" "b$i" >>"$WORK/ctr-berth.ms"
    time_ctr "$RUNC" "$STATE/ctr-runc" "r$i" >>"$WORK/ctr-runc.ms"
done
read -r xm x10 x90 <<<"$(stats "$WORK/ctr-berth.ms" 2)"
read -r ym y10 y90 <<<"$(stats "$WORK/ctr-runc.ms" 2)"
echo "ctr run --rm through containerd $("$CONTAINERD" --version | awk '{print $3}') + containerd-shim-runc-v2 (busybox 'true', $RUNS runs each, ms): median / p10 / p90"
printf "  berth-runtime  %8s %8s %8s\n" "$xm" "$x10" "$x90"
printf "  runc           %8s %8s %8s\n" "$ym" "$y10" "$y90"
bench_figure "ctr run --rm of true via containerd, ms" berth-runtime "$xm" ms
bench_figure "ctr run --rm of true via containerd, ms" runc "$ym" ms
echo "  ratio berth/runc (median): $(awk -v a="$xm" -v b="$ym" 'BEGIN { printf "%.2f", a / b }')"
