#!/usr/bin/env bash
# Container start-to-exit time: `berth-runtime run` against `runc run` on the
# same busybox bundle and the same config.json (process `true`, private
# cgroup parent), alternating one run of each so both see the same machine
# state. Prints both medians (and p10/p90) and the ratio berth/runc. No
# assertions: this is a measurement. Needs root. Leaves nothing behind.
#
#   bench/runtime.sh [RUNS]        (default 50; BERTH_BENCH_RUNS also works)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_need_root bench/runtime.sh
bench_need bench/runtime.sh jq

RUNS=${1:-${BERTH_BENCH_RUNS:-50}}
# Without BERTH_BIN_DIR, always (re)build: the figures are about this tree.
[ -n "${BERTH_BIN_DIR:-}" ] || cargo build --release -p berth-runtime >&2
bench_bins berth-runtime
BERTH=$BIN/berth-runtime
RUNC=$(command -v runc || true)
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
cleanup_hook() {
    for root in "$STATE/root-berth" "$STATE/root-runc"; do
        [ -d "$root" ] || continue
        for id in $(ls "$root" 2>/dev/null); do
            case $root in
                *berth) "$BERTH" --root "$root" delete --force "$id" >/dev/null 2>&1 ;;
                *runc) "$RUNC" --root "$root" delete --force "$id" >/dev/null 2>&1 ;;
            esac
        done
    done
    rm -rf "$STATE"
}

BUNDLE=$WORK/bundle
mkdir -p "$BUNDLE/rootfs" "$STATE/root-berth" "$STATE/root-runc"
cp -a "$FIXTURES/busybox/rootfs/." "$BUNDLE/rootfs/"
"$BERTH" spec --bundle "$BUNDLE"
jq '.process.terminal = false | .process.args = ["true"] | .linux.cgroupsPath = null' \
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

: >"$WORK/berth.ms"
: >"$WORK/runc.ms"
for i in $(seq "$RUNS"); do
    time_run "$BERTH" "$STATE/root-berth" "b$i-$$" >>"$WORK/berth.ms"
    [ -n "$RUNC" ] && time_run "$RUNC" "$STATE/root-runc" "r$i-$$" >>"$WORK/runc.ms"
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
