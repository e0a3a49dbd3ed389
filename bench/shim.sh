#!/usr/bin/env bash
# Memory of one shim supervising `sleep`: berth-shim (release build) and,
# when containerd is installed, containerd-shim-runc-v2 under a private
# containerd. Both drive the same OCI runtime (runc by default, so the
# figures compare the shims; BERTH_BENCH_RUNTIME overrides it for berth-shim).
# Needs root. Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_need_root bench/shim.sh
bench_bins berth-shim
RUNTIME=${BERTH_BENCH_RUNTIME:-$(command -v runc || echo "$BIN/berth-runtime")}
bench_fixtures

bench_workdir bshim-bench
ID=bench-shim-$$
NS=berth-bench-$$
CD_PID=
# Shims and containers first; bench_cleanup then stops containerd (in PIDS)
# and removes its cgroup parent $NS.
cleanup_hook() {
    for p in "$WORK"/s*/shim.pid; do [ -f "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null; done
    for i in $(seq "${N:-0}"); do "$RUNTIME" --root "$WORK/rt" delete --force "$ID-$i" >/dev/null 2>&1; done
    if [ -n "$CD_PID" ]; then
        ctr -a "$WORK/cd/containerd.sock" -n "$NS" task kill -s SIGKILL bench-sleep >/dev/null 2>&1
        sleep 0.3
        ctr -a "$WORK/cd/containerd.sock" -n "$NS" task delete -f bench-sleep >/dev/null 2>&1
        ctr -a "$WORK/cd/containerd.sock" -n "$NS" container delete bench-sleep >/dev/null 2>&1
    fi
}

mem_of() { # pid -> "RSS RSS N kB, PSS N kB, Private N kB" (sortable by RSS)
    local rss pss priv
    rss=$(rss_kb "$1")
    pss=$(awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup")
    priv=$(awk '/^Private_(Clean|Dirty):/ {s += $2} END {print s}' "/proc/$1/smaps_rollup")
    echo "$rss RSS ${rss} kB, PSS ${pss} kB, Private ${priv} kB"
}

# --- berth-shim ---------------------------------------------------------
# RSS of a small process is mostly shared library and text pages mapped by
# fault-around, so it varies by ~100 kB with the page cache: take the median
# of N shims. Private is what each shim costs on its own.
N=${BERTH_BENCH_SHIMS:-5}
mkdir -p "$WORK/bundle/rootfs"
cp -a "$FIXTURES/busybox/rootfs/." "$WORK/bundle/rootfs/"
(cd "$WORK/bundle" && "$RUNTIME" spec >/dev/null 2>&1 || runc spec)
jq '.process.terminal=false | .process.args=["sleep","1000"]' \
    "$WORK/bundle/config.json" >"$WORK/config.tmp" && mv "$WORK/config.tmp" "$WORK/bundle/config.json"
for i in $(seq "$N"); do
    jq --arg cg "/$ID-$i" '.linux.cgroupsPath=$cg' "$WORK/bundle/config.json" >"$WORK/config.$i.json"
    mkdir -p "$WORK/b$i" "$WORK/s$i"
    jq --arg root "$WORK/bundle/rootfs" '.root.path=$root | .root.readonly=true' \
        "$WORK/config.$i.json" >"$WORK/b$i/config.json"
    "$BIN/berth-shim" --id "$ID-$i" --bundle "$WORK/b$i" --state-dir "$WORK/s$i" \
        --runtime "$RUNTIME" --runtime-root "$WORK/rt" --log-path "$WORK/c$i.log"
    printf '{"op":"start"}\n' | socat - "UNIX-CONNECT:$WORK/s$i/shim.sock" >/dev/null
done
sleep 0.5
for i in $(seq "$N"); do mem_of "$(cat "$WORK/s$i/shim.pid")"; done | sort -n >"$WORK/mem"
MID=$(( (N + 1) / 2 ))
echo "berth-shim supervising sleep (runtime $RUNTIME), median of $N: $(sed -n "${MID}p" "$WORK/mem" | cut -d' ' -f2-)"
echo "  each, RSS/PSS/Private kB: $(awk '{printf "%s/%s/%s  ", $3, $6, $9}' "$WORK/mem")"
# Exec through the shim's protocol, on the first container: round trip of
# `true` (exec, stream to its end, exec_wait) and a 100 MiB output stream.
python3 - "$WORK/s1/shim.sock" <<'PY'
import json, socket, statistics, sys, time
sock = sys.argv[1]
def request(req):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    s.sendall((json.dumps(req) + "\n").encode())
    line = b""
    while not line.endswith(b"\n"):
        c = s.recv(1)
        if not c:
            raise SystemExit("shim closed the connection: %r" % line)
        line += c
    resp = json.loads(line)
    if not resp.get("ok"):
        raise SystemExit("shim refused %s: %s" % (req["op"], resp.get("error")))
    return s, resp
def run_exec(n, args):
    proc = {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": args,
            "env": ["PATH=/bin:/usr/bin"], "cwd": "/"}
    s, _ = request({"op": "exec", "exec_id": "b%d" % n, "process": proc})
    s.shutdown(socket.SHUT_WR)
    total = 0
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        total += len(d)
    _, w = request({"op": "exec_wait", "exec_id": "b%d" % n})
    return total, w["exit"]["exit_code"]
times = []
for n in range(20):
    t = time.perf_counter()
    run_exec(n, ["true"])
    times.append((time.perf_counter() - t) * 1000)
print("exec `true` through the shim (runtime exec included), median of 20: %.1f ms" % statistics.median(times))
t = time.perf_counter()
total, code = run_exec(100, ["dd", "if=/dev/zero", "bs=65536", "count=1600"])
dt = time.perf_counter() - t
print("exec output stream: %d MiB in %.2f s = %.0f MiB/s (framed, exit %d)" % (total >> 20, dt, total / dt / 2**20, code))
PY

for i in $(seq "$N"); do
    SHIM=$(cat "$WORK/s$i/shim.pid")
    printf '{"op":"kill","signal":9}\n' | socat - "UNIX-CONNECT:$WORK/s$i/shim.sock" >/dev/null
    for _ in $(seq 100); do kill -0 "$SHIM" 2>/dev/null || break; sleep 0.05; done
done

# json-file logging: 100 MiB of 100-byte lines, start to exit.json.
mkdir -p "$WORK/blog" "$WORK/slog"
jq --arg root "$WORK/bundle/rootfs" --arg cg "/$ID-log" \
    '.root.path=$root | .root.readonly=true | .linux.cgroupsPath=$cg |
     .process.args=["sh","-c","yes 012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678 | head -c 104857600"]' \
    "$WORK/bundle/config.json" >"$WORK/blog/config.json"
"$BIN/berth-shim" --id "$ID-log" --bundle "$WORK/blog" --state-dir "$WORK/slog" \
    --runtime "$RUNTIME" --runtime-root "$WORK/rt" --log-path "$WORK/log.json" \
    --log-max-size 20000000 --log-max-files 10
T0=$(date +%s%N)
printf '{"op":"start"}\n' | socat - "UNIX-CONNECT:$WORK/slog/shim.sock" >/dev/null
while [ ! -f "$WORK/slog/exit.json" ]; do sleep 0.01; done
T1=$(date +%s%N)
LINES=$(cat "$WORK"/log.json* | wc -l)
for _ in $(seq 100); do grep -q exiting "$WORK/slog/shim.log" && break; sleep 0.05; done
echo "json-file logging: 100 MiB in $(( (T1 - T0) / 1000000 )) ms ($LINES lines, rotated at 20 MB);" \
    "shim $(grep -o 'cpu user.*' "$WORK/slog/shim.log" | tr -d ')')"

# --- containerd-shim-runc-v2 ---------------------------------------------
if command -v containerd >/dev/null && command -v ctr >/dev/null &&
    command -v containerd-shim-runc-v2 >/dev/null; then
    mkdir -p "$WORK/cd"
    cat >"$WORK/cd/config.toml" <<EOF
version = 2
root = "$WORK/cd/root"
state = "$WORK/cd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$WORK/cd/containerd.sock"
[ttrpc]
  address = "$WORK/cd/containerd.sock.ttrpc"
[debug]
  address = "$WORK/cd/debug.sock"
EOF
    containerd --config "$WORK/cd/config.toml" >"$WORK/cd/log" 2>&1 &
    CD_PID=$!
    PIDS+=("$CD_PID")
    CGROUP_PARENTS+=("$NS")
    for _ in $(seq 100); do [ -S "$WORK/cd/containerd.sock" ] && break; sleep 0.1; done
    CTR=(ctr -a "$WORK/cd/containerd.sock" -n "$NS")
    "${CTR[@]}" images import "$FIXTURES/busybox.tar" >/dev/null
    IMG=$("${CTR[@]}" images ls -q | head -n1)
    "${CTR[@]}" run -d "$IMG" bench-sleep sleep 1000 >/dev/null
    sleep 0.5
    CPID=$(pgrep -f "containerd-shim-runc-v2.*-namespace $NS" | head -n1 || true)
    if [ -n "$CPID" ]; then
        echo "containerd-shim-runc-v2 supervising sleep (runtime runc): $(mem_of "$CPID" | cut -d' ' -f2-)"
    else
        echo "containerd-shim-runc-v2: no shim process found (see $WORK/cd/log)"
    fi
else
    echo "containerd-shim-runc-v2: not installed, skipped"
fi
