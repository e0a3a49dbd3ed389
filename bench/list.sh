#!/usr/bin/env bash
# List and inspect throughput through the API (keep-alive clients,
# bench/apiload.rs), berthd (release) next to Debian's dockerd and podman's
# Docker-compatible service (`podman system service`), each on a private
# socket and roots, all of them up at once:
#   - for each N in BENCH_LIST_SIZES (default "100 1000"): N containers
#     created in each engine (`true`, network none, the first
#     BENCH_LIST_RUNNING of them running `sleep`), the disk synced, then
#     `GET /containers/json?all=1` for BENCH_SECONDS with 8 clients
#     (requests/s and p99) and with 1 client (ms a request),
#   - `GET /containers/NAME/json` (inspect) with 8 clients at the first N.
# Each figure is the median of BENCH_LIST_ROUNDS (3) rounds; a round
# measures every engine in turn, starting with a different one each time,
# so a noisy minute on this machine does not fall on one engine only, and
# each timing waits until the machine is idle (`wait_idle`).
# Every client reads each answer in full. Needs root. Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_need_root bench/list.sh
bench_need bench/list.sh curl
bench_bins berthd berth-shim berth-runtime
bench_fixtures
bench_apiload
SIZES=${BENCH_LIST_SIZES:-100 1000}
RUNNING=${BENCH_LIST_RUNNING:-5}
SECS=${BENCH_SECONDS:-3}
ROUNDS=${BENCH_LIST_ROUNDS:-3}
bench_workdir blist-bench
cleanup_hook() { rm_containers_everywhere; }

api() { # socket method path [body]
    curl -sf --unix-socket "$1" -X "$2" -H 'Content-Type: application/json' \
        ${4:+-d "$4"} "http://localhost/v1.41$3"
}

# Creates containers l<from>..l<to>, four at a time.
create_range() { # socket from to
    seq "$2" "$3" | xargs -P 4 -I{} curl -sf --unix-socket "$1" -X POST \
        -H 'Content-Type: application/json' \
        -d '{"Image":"busybox","Cmd":["sleep","100000"],"HostConfig":{"NetworkMode":"none"}}' \
        "http://localhost/v1.41/containers/create?name=l{}" -o /dev/null
}

ENGINES=()      # names, in the order they were started
declare -A SOCK # engine -> API socket

create_all() { # from to
    local e
    for e in "${ENGINES[@]}"; do
        create_range "${SOCK[$e]}" "$1" "$2"
        if [ "$1" = 1 ]; then
            for i in $(seq "$RUNNING"); do api "${SOCK[$e]}" POST "/containers/l$i/start" >/dev/null; done
        fi
        local count
        count=$(api "${SOCK[$e]}" GET '/containers/json?all=1' | grep -o '"Id":' | wc -l)
        [ "$count" = "$2" ] || echo "$e: the list has $count of $2 containers" >&2
    done
}

# One round of one engine's figures at n containers, appended to
# $WORK/fig.<engine>.<name> (one value per round).
measure_round() { # engine n
    local e=$1 n=$2 f=$WORK/fig.$1
    wait_idle
    read -r _ rps _ p99 err bytes < <("$APILOAD" "${SOCK[$e]}" get '/v1.41/containers/json?all=1' 8 "$SECS")
    echo "$rps" >>"$f.list8.$n"
    echo "$p99" >>"$f.list8p99.$n"
    echo "$err $bytes" >"$f.list8info.$n"
    wait_idle
    read -r _ _ one _ _ _ < <("$APILOAD" "${SOCK[$e]}" get '/v1.41/containers/json?all=1' 1 "$SECS")
    echo "$one" >>"$f.list1.$n"
    if [ "$n" = "${SIZES%% *}" ]; then
        wait_idle
        read -r _ rps _ p99 err bytes < <("$APILOAD" "${SOCK[$e]}" get '/v1.41/containers/l3/json' 8 "$SECS")
        echo "$rps" >>"$f.inspect.$n"
        echo "$p99" >>"$f.inspectp99.$n"
        echo "$err $bytes" >"$f.inspectinfo.$n"
    fi
}

report() { # engine n
    local e=$1 n=$2 f=$WORK/fig.$1 rps p99 one err bytes
    rps=$(median <"$f.list8.$n")
    p99=$(median <"$f.list8p99.$n")
    one=$(median <"$f.list1.$n")
    read -r err bytes <"$f.list8info.$n"
    BETTER=higher bench_figure "list all, $n containers, 8 clients, req/s" "$e" "$rps" req/s
    bench_figure "list all, $n containers, 8 clients, p99 ms" "$e" "$p99" ms
    bench_figure "list all, $n containers, 1 client, ms" "$e" "$one" ms
    printf '%-8s %5s containers: list all, 8 clients: %6s req/s, p99 %6s ms (%s errors, %s bytes)   1 client: %s ms a request   [rounds: %s req/s]\n' \
        "$e" "$n" "$rps" "$p99" "$err" "$bytes" "$one" "$(paste -sd' ' "$f.list8.$n")"
    if [ -f "$f.inspect.$n" ]; then
        rps=$(median <"$f.inspect.$n")
        p99=$(median <"$f.inspectp99.$n")
        read -r err bytes <"$f.inspectinfo.$n"
        BETTER=higher bench_figure "inspect, $n containers, 8 clients, req/s" "$e" "$rps" req/s
        bench_figure "inspect, $n containers, 8 clients, p99 ms" "$e" "$p99" ms
        printf '%-8s %5s containers: inspect, 8 clients: %6s req/s, p99 %6s ms (%s errors, %s bytes)   [rounds: %s req/s]\n' \
            "$e" "$n" "$rps" "$p99" "$err" "$bytes" "$(paste -sd' ' "$f.inspect.$n")"
    fi
}

load_image() { # socket
    curl -sf --unix-socket "$1" -X POST -H 'Content-Type: application/x-tar' \
        --data-binary "@$FIXTURES/busybox.tar" http://localhost/v1.41/images/load -o /dev/null
}

# --- the engines, all up at once ------------------------------------------
start_berthd "$WORK/berth" "blist-$$"
wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
load_image "$DAEMON_SOCK"
ENGINES+=(berthd)
SOCK[berthd]=$DAEMON_SOCK

if command -v dockerd >/dev/null; then
    start_dockerd "$WORK/docker" blist "blistd-$$"
    wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
    load_image "$DAEMON_SOCK"
    ENGINES+=(dockerd)
    SOCK[dockerd]=$DAEMON_SOCK
else
    echo "dockerd not installed: no dockerd figures"
fi

if start_podman "$WORK/podman"; then
    if wait_sock "$DAEMON_SOCK" "$DAEMON_PID"; then
        "${PODMAN[@]}" load -q -i "$FIXTURES/busybox.tar" >/dev/null
        "${PODMAN[@]}" tag localhost/busybox:latest docker.io/library/busybox:latest
        ENGINES+=(podman)
        SOCK[podman]=$DAEMON_SOCK
    else
        echo "podman: its API service did not come up here: $(tail -3 "$WORK/podman/log")"
    fi
else
    echo "podman not installed: no podman figures"
fi

# --- the figures, size by size, in rounds ------------------------------------
have=0
for n in $SIZES; do
    create_all $((have + 1)) "$n"
    have=$n
    quiesce_disk
    for r in $(seq "$ROUNDS"); do
        # Round r starts with engine r (mod the count), then the others.
        for k in $(seq 0 $((${#ENGINES[@]} - 1))); do
            measure_round "${ENGINES[$(((r - 1 + k) % ${#ENGINES[@]}))]}" "$n"
        done
    done
    for e in "${ENGINES[@]}"; do report "$e" "$n"; done
done
