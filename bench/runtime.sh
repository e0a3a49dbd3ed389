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
[ "$(id -u)" = 0 ] || { echo "bench/runtime.sh needs root" >&2; exit 1; }
command -v jq >/dev/null || { echo "bench/runtime.sh needs jq" >&2; exit 1; }

RUNS=${1:-${BERTH_BENCH_RUNS:-50}}
BIN=${BERTH_BIN_DIR:-}
if [ -z "$BIN" ]; then
    cargo build --release -p berth-runtime >&2
    BIN=$PWD/target/release
fi
BERTH=$BIN/berth-runtime
RUNC=$(command -v runc || true)
FIXTURES=${BERTH_FIXTURES:-$PWD/target/fixtures}
if [ ! -d "$FIXTURES/busybox/rootfs" ]; then
    mkdir -p "$FIXTURES"
    rootfs-fixtures/build.sh "$FIXTURES" >/dev/null
fi

WORK=$(mktemp -d /tmp/berth-rt-bench.XXXXXX)
# State roots on tmpfs (BERTH_BENCH_STATE_DIR, default /dev/shm), as /run is
# on a standard host, so the figures compare runtimes, not the fsync latency
# of whatever disk holds /tmp. Both runtimes get the same place.
STATE=$(mktemp -d "${BERTH_BENCH_STATE_DIR:-/dev/shm}/berth-rt-bench.XXXXXX")
PARENT=berth-rt-bench-$$
cleanup() {
    set +e
    for root in "$STATE/root-berth" "$STATE/root-runc"; do
        [ -d "$root" ] || continue
        for id in $(ls "$root" 2>/dev/null); do
            case $root in
                *berth) "$BERTH" --root "$root" delete --force "$id" >/dev/null 2>&1 ;;
                *runc) "$RUNC" --root "$root" delete --force "$id" >/dev/null 2>&1 ;;
            esac
        done
    done
    findmnt -rn -o TARGET | grep "^$WORK" | sort -r | xargs -r -n1 umount -l
    # runc leaves the parent (and berth removes it when empty): rmdir both ways.
    for d in /sys/fs/cgroup/*/"$PARENT" /sys/fs/cgroup/"$PARENT"; do
        [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    rm -rf "$WORK" "$STATE"
}
trap cleanup EXIT

BUNDLE=$WORK/bundle
mkdir -p "$BUNDLE/rootfs" "$STATE/root-berth" "$STATE/root-runc"
cp -a "$FIXTURES/busybox/rootfs/." "$BUNDLE/rootfs/"
"$BERTH" spec --bundle "$BUNDLE"
jq '.process.terminal = false | .process.args = ["true"] | .linux.cgroupsPath = null' \
    "$BUNDLE/config.json" >"$WORK/template.json"

# Milliseconds (3 decimals) that one `run` takes, start to exit.
time_run() { # runtime root id
    local rt=$1 root=$2 id=$3 t0 t1
    jq --arg p "/$PARENT/$id" '.linux.cgroupsPath = $p' "$WORK/template.json" >"$BUNDLE/config.json"
    t0=$(date +%s%N)
    "$rt" --root "$root" run --bundle "$BUNDLE" "$id" </dev/null >/dev/null 2>"$WORK/err" ||
        { echo "$rt run failed: $(cat "$WORK/err")" >&2; return 1; }
    t1=$(date +%s%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) / 1e6 }'
}

stats() { # file -> "median p10 p90"
    sort -n "$1" | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        p10 = v[int(NR * 0.1) + 1]; p90 = v[int(NR * 0.9) > 0 ? int(NR * 0.9) : 1]
        printf "%.2f %.2f %.2f", m, p10, p90 }'
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

read -r bm b10 b90 <<<"$(stats "$WORK/berth.ms")"
echo "runtime run (busybox 'true', $RUNS runs each, state on $(findmnt -n -o FSTYPE -T "$STATE" | head -1), ms): median / p10 / p90"
printf "  berth-runtime  %8s %8s %8s\n" "$bm" "$b10" "$b90"
if [ -n "$RUNC" ]; then
    read -r rm r10 r90 <<<"$(stats "$WORK/runc.ms")"
    printf "  runc           %8s %8s %8s   (%s)\n" "$rm" "$r10" "$r90" "$("$RUNC" --version | head -1)"
    echo "  ratio berth/runc (median): $(awk -v a="$bm" -v b="$rm" 'BEGIN { printf "%.2f", a / b }')  (target <= 0.50)"
else
    echo "  runc is not installed: no comparison"
fi
