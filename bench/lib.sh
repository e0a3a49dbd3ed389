# Helpers shared by bench/*.sh (sourced, not run). Each script does:
#
#   set -euo pipefail
#   cd "$(dirname "$0")/.."
#   . bench/lib.sh
#   bench_need_root bench/x.sh
#   bench_bins berthd berth-shim ...    # BIN: release binaries (target/dist)
#   bench_fixtures                      # FIXTURES: busybox rootfs and busybox.tar
#   bench_workdir bx-bench              # WORK, cleanup trap on EXIT
#
# then starts engines with start_berthd / start_dockerd (private socket, data
# root, exec root, pidfile; never /var/run/docker.sock) and waits for them
# with wait_sock or wait_ping. On exit bench_cleanup runs the script's own
# `cleanup_hook` (if defined), stops every daemon started, unmounts what is
# left under WORK, removes the registered cgroup parents and bridges, what
# dockerd created under /run/docker and /etc/docker, and WORK itself.

DOCKER=${DOCKER_CLI:-$(command -v /usr/local/bin/docker || command -v docker)}

PIDS=()            # daemons to stop
SOCKS=()           # their API sockets
CGROUP_PARENTS=()  # cgroup parents to remove (with everything below them)
BRIDGES=()         # links to delete
NEW_HOST_PATHS=()  # paths dockerd creates even with private roots

bench_need_root() { # script-name
    [ "$(id -u)" = 0 ] || { echo "$1 needs root" >&2; exit 1; }
}

bench_need() { # script-name command...
    local script=$1 c
    shift
    for c in "$@"; do
        command -v "$c" >/dev/null || { echo "$script needs $c" >&2; exit 1; }
    done
}

# BIN = BERTH_BIN_DIR, or target/dist as scripts/build-release.sh makes it
# (rebuilt first, so the figures are about this tree). The packages named
# must be there.
bench_bins() { # package...
    if [ -n "${BERTH_BIN_DIR:-}" ]; then
        BIN=$BERTH_BIN_DIR
    else
        BIN=$PWD/target/dist
        scripts/build-release.sh >&2
    fi
    local b
    for b in "$@"; do
        [ -x "$BIN/$b" ] || { echo "bench: no $b in $BIN" >&2; exit 1; }
    done
}

# FIXTURES = BERTH_FIXTURES or target/fixtures, built when missing.
bench_fixtures() {
    FIXTURES=${BERTH_FIXTURES:-$PWD/target/fixtures}
    if [ ! -f "$FIXTURES/busybox.tar" ] || [ ! -d "$FIXTURES/busybox/rootfs" ]; then
        mkdir -p "$FIXTURES"
        rootfs-fixtures/build.sh "$FIXTURES" >/dev/null
    fi
}

# WORK = a new directory under /tmp; bench_cleanup runs on exit.
bench_workdir() { # name-prefix
    WORK=$(mktemp -d "/tmp/$1.XXXXXX")
    chmod 755 "$WORK"
    trap bench_cleanup EXIT
}

bench_cleanup() {
    set +e
    # Podman's containers (conmon and the container) outlive its service:
    # removed with podman itself, which is quicker than through the API.
    if [ -n "${PODMAN:-}" ]; then
        "${PODMAN[@]}" rm -af -t 0 >/dev/null 2>&1
    fi
    if declare -F cleanup_hook >/dev/null; then cleanup_hook; fi
    local p d
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
    done
    [ -n "${WORK:-}" ] && findmnt -rn -o TARGET | grep "^$WORK" | sort -r | xargs -r -n1 umount -l
    for p in "${CGROUP_PARENTS[@]}"; do
        for d in /sys/fs/cgroup/*/"$p" /sys/fs/cgroup/"$p"; do
            [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
        done
    done
    for p in "${BRIDGES[@]}"; do
        ip link del "$p" 2>/dev/null
        remove_bridge_rules "$p"
    done
    [ -n "${WORK:-}" ] && rm -rf "$WORK"
    for p in "${NEW_HOST_PATHS[@]}"; do
        if [ -d "$p" ]; then rmdir "$p" 2>/dev/null; else rm -f "$p"; fi
    done
    return 0
}

# Deletes the iptables rules that name BRIDGE, then its BERTH-* chains.
remove_bridge_rules() { # bridge
    local t rule chain
    for t in nat filter; do
        iptables -w -t "$t" -S 2>/dev/null | grep -E "^-A .*[ -]$1(-POST)?( |$)" |
            while read -r rule; do
                # shellcheck disable=SC2086
                iptables -w -t "$t" -D ${rule#-A } 2>/dev/null
            done
        for chain in "BERTH-$1" "BERTH-$1-POST"; do
            iptables -w -t "$t" -F "$chain" 2>/dev/null && iptables -w -t "$t" -X "$chain" 2>/dev/null
        done
    done
    return 0
}

# Removes the named containers (or, with no names, all of them) in every
# engine started, e.g. from a cleanup_hook.
rm_containers_everywhere() { # name...
    local s ids
    for s in "${SOCKS[@]}"; do
        [ -S "$s" ] || continue
        if [ $# -gt 0 ]; then
            DOCKER_HOST="unix://$s" timeout 30 "$DOCKER" rm -f "$@" >/dev/null 2>&1
        else
            ids=$(DOCKER_HOST="unix://$s" timeout 30 "$DOCKER" ps -aq 2>/dev/null)
            # shellcheck disable=SC2086
            [ -n "$ids" ] && DOCKER_HOST="unix://$s" timeout 30 "$DOCKER" rm -f $ids >/dev/null 2>&1
        fi
    done
    return 0
}

# Starts berthd on DIR/berth.sock with its data and exec roots in DIR and
# DIR/daemon.json as config (written as `{}` unless it exists). Sets
# DAEMON_PID, DAEMON_SOCK and DAEMON_T0 (µs, right before the exec).
start_berthd() { # dir [cgroup-parent] [more berthd args...]
    local dir=$1 parent=${2:-}
    shift
    [ $# -gt 0 ] && shift
    daemon_dir "$dir" "$parent" berth.sock
    # A private default bridge (never the host's berth0), removed with its
    # NAT rules by bench_cleanup, unless the caller names one (a flag and
    # daemon.json naming it both is an error, as in dockerd).
    local bridge=()
    if [[ " $* " != *" --bridge "* ]] && ! grep -q '"bridge"' "$dir/daemon.json"; then
        bridge=(--bridge "bb$$-${#SOCKS[@]}")
        BRIDGES+=("bb$$-${#SOCKS[@]}")
    fi
    "$BIN/berthd" -H "unix://$DAEMON_SOCK" --data-root "$dir/data" \
        --exec-root "$dir/exec" --pidfile "$dir/berthd.pid" \
        --config-file "$dir/daemon.json" "${CGROUP_ARGS[@]}" \
        --log-level warn "${bridge[@]}" "$@" >"$dir/log" 2>&1 &
    daemon_started
}

# Mounts a tmpfs on DIR (made if missing) for an engine's volatile state.
# Deployed engines keep it under /run, a tmpfs on any systemd host:
# dockerd's exec root (with containerd's state and runc's root under it),
# berthd's, podman's runroot. The private roots here get the same, so the
# figures are those of an installed engine rather than of whatever holds
# WORK (on a machine whose /run is on disk, ext4's inode churn for state
# files and bundles adds ~2.5 ms to each berthd run). bench_cleanup
# unmounts everything under WORK. A daemon restarted on the same DIR keeps
# its tmpfs, as it keeps /run.
run_tmpfs() { # dir
    mkdir -p "$1"
    mountpoint -q "$1" || mount -t tmpfs -o mode=0711 bench-run "$1"
}

# Writes out dirty pages before an engine starts: the previous bench's or
# engine's teardown (a thousand containers removed, a build's layers) is
# otherwise written back during the next engine's timings, which then
# vary by what ran before them rather than by the engine.
quiesce_disk() {
    sync
}

# Waits (5 s at most) until the machine is idle: 200 ms windows until one
# is 90% idle or more, so what one engine still does after its timing (a
# backlog of answers, a garbage collection) does not fall on the next.
wait_idle() {
    local a b k total idle
    for _ in $(seq 25); do
        read -ra a </proc/stat
        sleep 0.2
        read -ra b </proc/stat
        total=0
        for k in 1 2 3 4 5 6 7 8; do total=$((total + b[k] - a[k])); done
        idle=$((b[4] - a[4] + b[5] - a[5]))
        [ "$total" -gt 0 ] && [ $((idle * 100 / total)) -ge 90 ] && return 0
    done
    return 0
}

# For start_*: makes DIR with a default daemon.json, registers the cgroup
# parent (CGROUP_ARGS: its flag, if any), sets DAEMON_SOCK and DAEMON_T0.
daemon_dir() { # dir cgroup-parent socket-name
    quiesce_disk
    mkdir -p "$1"
    run_tmpfs "$1/exec"
    [ -f "$1/daemon.json" ] || echo '{}' >"$1/daemon.json"
    CGROUP_ARGS=()
    if [ -n "$2" ]; then
        CGROUP_ARGS=(--cgroup-parent "$2")
        CGROUP_PARENTS+=("$2")
    fi
    DAEMON_SOCK=$1/$3
    DAEMON_T0=$(now_us)
}

# For start_*, right after the daemon was put in the background.
daemon_started() {
    DAEMON_PID=$!
    PIDS+=("$DAEMON_PID")
    SOCKS+=("$DAEMON_SOCK")
}

# Starts Debian's dockerd (and the containerd it runs) the same way: own
# socket DIR/docker.sock, data root, exec root, pidfile, containerd
# namespaces NS$$ / NSp$$, --bridge ${DOCKERD_BRIDGE:-none}, no iptables.
# Sets DAEMON_PID, DAEMON_SOCK and DAEMON_T0 like start_berthd.
start_dockerd() { # dir containerd-ns [cgroup-parent] [more dockerd args...]
    local dir=$1 ns=$2 parent=${3:-}
    shift 2
    [ $# -gt 0 ] && shift
    local p
    for p in /run/docker/plugins /run/docker /etc/docker/key.json /etc/docker; do
        [ -e "$p" ] || NEW_HOST_PATHS+=("$p")
    done
    daemon_dir "$dir" "$parent" docker.sock
    dockerd -H "unix://$DAEMON_SOCK" --data-root "$dir/data" \
        --exec-root "$dir/exec" --pidfile "$dir/docker.pid" \
        --config-file "$dir/daemon.json" --bridge "${DOCKERD_BRIDGE:-none}" --iptables=false \
        --ip-masq=false --ip-forward=false --storage-driver overlay2 \
        "${CGROUP_ARGS[@]}" --containerd-namespace "$ns$$" --containerd-plugins-namespace "${ns}p$$" \
        "$@" >"$dir/log" 2>&1 &
    daemon_started
}

# Waits until `docker version` answers on the socket.
wait_sock() { # socket pid
    for _ in $(seq 300); do
        [ -S "$1" ] && DOCKER_HOST="unix://$1" "$DOCKER" version >/dev/null 2>&1 && return 0
        kill -0 "$2" 2>/dev/null || { echo "daemon exited" >&2; return 1; }
        sleep 0.1
    done
    echo "daemon did not come up" >&2
    return 1
}

# Prints the microseconds from start_us until `GET /_ping` answers.
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

now_ns() { date +%s%N; }
now_us() { echo $(( $(date +%s%N) / 1000 )); }
now_ms() { date +%s%3N; }
ms_since() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN { printf "%.3f\n", (b - a) / 1e6 }'; } # start_ns

# Runs the command once and appends its duration (ms) to the file.
time_into() { # file command...
    local file=$1 t0
    shift
    t0=$(now_ns)
    "$@"
    ms_since "$t0" >>"$file"
}

# Lower median of the numbers on stdin.
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

stats() { # file-of-numbers [decimals, default 1] -> "median p10 p90"
    sort -n "$1" | awk -v d="${2:-1}" '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        p10 = v[int(NR * 0.1) + 1]; p90 = v[int(NR * 0.9) > 0 ? int(NR * 0.9) : 1]
        f = "%." d "f %." d "f %." d "f\n"; printf f, m, p10, p90 }'
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# Records one figure for bench/run.sh's table and JSON: appends a JSON line
# to $BENCH_FIGURES when set (run.sh sets it), else does nothing. Lower is
# better unless BETTER=higher is given in the environment of the call.
bench_figure() { # figure engine value unit
    [ -n "${BENCH_FIGURES:-}" ] || return 0
    [[ $3 =~ ^[0-9]+(\.[0-9]+)?$ ]] || return 0 # "-": not measured
    local engine=${2%% *}
    engine=${engine%%+*}
    printf '{"figure": "%s", "engine": "%s", "value": %s, "unit": "%s", "better": "%s", "script": "%s"}\n' \
        "$1" "$engine" "$3" "$4" "${BETTER:-lower}" "$(basename "$0")" >>"$BENCH_FIGURES"
}

# APILOAD = the keep-alive API client (bench/apiload.rs), compiled with
# rustc -O into target/bench when missing or older than its source.
bench_apiload() {
    APILOAD=$PWD/target/bench/apiload
    if [ ! -x "$APILOAD" ] || [ bench/apiload.rs -nt "$APILOAD" ]; then
        mkdir -p target/bench
        rustc --edition 2021 -O bench/apiload.rs -o "$APILOAD" >&2
    fi
}

# Starts podman's Docker-compatible API service (`podman system service`)
# on DIR/podman.sock with its storage, run root, tmp dir and config under
# DIR (cgroupfs, file events, no host state touched). Sets DAEMON_PID,
# DAEMON_SOCK and DAEMON_T0 like start_berthd, and PODMAN (its command
# line, for `"${PODMAN[@]}" load` and such). Returns 1 when podman is not
# installed. Podman runs runc: crun 1.8 refuses hybrid cgroup hosts; and
# its default rlimits (above this host's hard limits) are replaced by
# ones every host allows.
start_podman() { # dir
    command -v podman >/dev/null || return 1
    local dir=$1
    quiesce_disk
    mkdir -p "$dir/root" "$dir/tmp" "$dir/net"
    run_tmpfs "$dir/run"
    printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]\n' >"$dir/containers.conf"
    export CONTAINERS_CONF=$dir/containers.conf
    PODMAN=(podman --root "$dir/root" --runroot "$dir/run" --tmpdir "$dir/tmp"
        --storage-driver overlay --cgroup-manager cgroupfs --events-backend file
        --network-config-dir "$dir/net" --runtime runc)
    DAEMON_SOCK=$dir/podman.sock
    DAEMON_T0=$(now_us)
    "${PODMAN[@]}" system service --time 0 "unix://$DAEMON_SOCK" >"$dir/log" 2>&1 &
    daemon_started
    # Where podman puts its containers' cgroups with cgroupfs.
    CGROUP_PARENTS+=(libpod_parent)
}
