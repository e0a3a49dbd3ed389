#!/usr/bin/env bash
# List and inspect throughput through the API (keep-alive clients,
# bench/apiload.rs), berthd (release) next to Debian's dockerd and podman's
# Docker-compatible service (`podman system service`), each on a private
# socket and roots:
#   - for each N in BENCH_LIST_SIZES (default "100 1000"): N containers
#     created (`true`, network none, the first BENCH_LIST_RUNNING of them
#     running `sleep`), then `GET /containers/json?all=1` for BENCH_SECONDS
#     with 8 clients (requests/s and p99) and with 1 client (ms a request),
#   - `GET /containers/NAME/json` (inspect) with 8 clients at the first N.
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
SECS=${BENCH_SECONDS:-5}
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

measure() { # name socket
    local name=$1 sock=$2 have=0 n out
    for n in $SIZES; do
        create_range "$sock" $((have + 1)) "$n"
        if [ "$have" = 0 ]; then
            for i in $(seq "$RUNNING"); do api "$sock" POST "/containers/l$i/start" >/dev/null; done
        fi
        have=$n
        local count
        count=$(api "$sock" GET '/containers/json?all=1' | grep -o '"Id":' | wc -l)
        [ "$count" = "$n" ] || echo "$name: the list has $count of $n containers" >&2
        read -r _ rps _ p99 err bytes < <("$APILOAD" "$sock" get '/v1.41/containers/json?all=1' 8 "$SECS")
        read -r _ _ one _ _ _ < <("$APILOAD" "$sock" get '/v1.41/containers/json?all=1' 1 "$SECS")
        BETTER=higher bench_figure "list all, $n containers, 8 clients, req/s" "$name" "$rps" req/s
        bench_figure "list all, $n containers, 8 clients, p99 ms" "$name" "$p99" ms
        bench_figure "list all, $n containers, 1 client, ms" "$name" "$one" ms
        printf '%-8s %5s containers: list all, 8 clients: %6s req/s, p99 %6s ms (%s errors, %s bytes)   1 client: %s ms a request\n' \
            "$name" "$n" "$rps" "$p99" "$err" "$bytes" "$one"
        if [ "$n" = "${SIZES%% *}" ]; then
            read -r _ rps _ p99 err bytes < <("$APILOAD" "$sock" get '/v1.41/containers/l3/json' 8 "$SECS")
            BETTER=higher bench_figure "inspect, $n containers, 8 clients, req/s" "$name" "$rps" req/s
            bench_figure "inspect, $n containers, 8 clients, p99 ms" "$name" "$p99" ms
            printf '%-8s %5s containers: inspect, 8 clients: %6s req/s, p99 %6s ms (%s errors, %s bytes)\n' \
                "$name" "$n" "$rps" "$p99" "$err" "$bytes"
        fi
    done
}

load_image() { # socket
    curl -sf --unix-socket "$1" -X POST -H 'Content-Type: application/x-tar' \
        --data-binary "@$FIXTURES/busybox.tar" http://localhost/v1.41/images/load -o /dev/null
}

# --- berthd ---------------------------------------------------------------
start_berthd "$WORK/berth" "blist-$$"
wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
load_image "$DAEMON_SOCK"
measure berthd "$DAEMON_SOCK"

# --- dockerd (Debian docker.io), private everything -------------------------
if command -v dockerd >/dev/null; then
    start_dockerd "$WORK/docker" blist "blistd-$$"
    wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
    load_image "$DAEMON_SOCK"
    measure dockerd "$DAEMON_SOCK"
else
    echo "dockerd not installed: no dockerd figures"
fi

# --- podman system service, private everything ------------------------------
if start_podman "$WORK/podman"; then
    if wait_sock "$DAEMON_SOCK" "$DAEMON_PID"; then
        "${PODMAN[@]}" load -q -i "$FIXTURES/busybox.tar" >/dev/null
        "${PODMAN[@]}" tag localhost/busybox:latest docker.io/library/busybox:latest
        measure podman "$DAEMON_SOCK"
    else
        echo "podman: its API service did not come up here: $(tail -3 "$WORK/podman/log")"
    fi
else
    echo "podman not installed: no podman figures"
fi
