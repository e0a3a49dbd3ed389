#!/usr/bin/env bash
# Runs every benchmark in bench/ (release build) and prints one table of
# their figures: berth next to dockerd, podman and runc where they ran in
# the same run, with the berth/other ratio; the same as JSON in
# target/bench/results-<time>.json so runs can be compared. Needs root.
#
#   bench/run.sh [SCRIPT...]     # default: every bench/*.sh
#
# Each script states its method in its own header; each figure it records
# (bench_figure in bench/lib.sh) is one line here.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-release.sh
export BERTH_BIN_DIR=$PWD/target/dist
mkdir -p target/fixtures target/bench
[ -f target/fixtures/busybox.tar ] || rootfs-fixtures/build.sh target/fixtures
export BERTH_FIXTURES=$PWD/target/fixtures
stamp=$(date -u +%Y%m%dT%H%M%SZ)
export BENCH_FIGURES=$PWD/target/bench/figures-$stamp.jsonl
: >"$BENCH_FIGURES"
scripts=("$@")
if [ ${#scripts[@]} -eq 0 ]; then
    for b in bench/*.sh; do
        case "$(basename "$b")" in run.sh | lib.sh) continue ;; esac
        scripts+=("$b")
    done
fi
for b in "${scripts[@]}"; do
    echo "== $b"
    bash "$b" || echo "($b failed)"
done
python3 - "$BENCH_FIGURES" "target/bench/results-$stamp.json" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" <<'PY'
import json, sys
figures_path, out_path, commit = sys.argv[1:4]
rows = {}
order = []
for line in open(figures_path):
    line = line.strip()
    if not line:
        continue
    f = json.loads(line)
    key = (f["script"], f["figure"])
    if key not in rows:
        rows[key] = {"script": f["script"], "figure": f["figure"], "unit": f["unit"], "better": f["better"], "values": {}}
        order.append(key)
    rows[key]["values"][f["engine"]] = f["value"]
berth_names = ("berthd", "berth-runtime", "kernel")
others = ("dockerd", "podman", "runc", "crun")
def fmt(v):
    return "-" if v is None else (f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}")
print()
print(f"{'figure':<48} {'berth':>10} {'dockerd':>10} {'podman':>10} {'runc':>10}  ratio")
for key in order:
    r = rows[key]
    v = r["values"]
    berth = next((v[n] for n in berth_names if n in v), None)
    ratio = ""
    for o in others:
        if berth is not None and v.get(o):
            ratio = f"{berth / v[o]:.2f}x {o}"
            r["ratio"] = {"against": o, "value": round(berth / v[o], 3)}
            break
    print(f"{r['figure'][:48]:<48} {fmt(berth):>10} {fmt(v.get('dockerd')):>10} {fmt(v.get('podman')):>10} {fmt(v.get('runc')):>10}  {ratio}")
json.dump({"commit": commit, "figures": [rows[k] for k in order]}, open(out_path, "w"), indent=1)
print(f"\n(lower is better except where the unit is a rate; JSON: {out_path})")
PY
