#!/usr/bin/env bash
# `docker build` figures through the real docker CLI (classic builder API),
# berthd (release build) side by side with Debian's dockerd 20.10 on a
# private socket, data root and exec root (never /var/run/docker.sock):
#   - an 8-step app Dockerfile on busybox (FROM, WORKDIR, ADD, RUN, EXPOSE,
#     ENV, CMD): cold build, rebuild with nothing changed, rebuild after
#     one source file changed
#   - a multi-stage Dockerfile with two independent stages and a final one
#     copying from both: cold build
#   - the no-change rebuild through the API alone (bench/build_api.py posts
#     the same context tar on the socket), without the CLI's start-up
# Medians of BENCH_RUNS (cold builds use --no-cache). The Flask image of
# SCENARIOS.md §3 is not a fixture yet, so the app is a shell script.
# Needs root. Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_need_root bench/build.sh
bench_bins berthd berth-shim berth-runtime
bench_fixtures
RUNS=${BENCH_RUNS:-5}
bench_workdir bbuild-bench
cleanup_hook() { rm_containers_everywhere; }
trap 'echo "bench/build.sh failed at line $LINENO" >&2; tail -5 "$WORK"/*/log >&2' ERR

APP=$WORK/app
mkdir -p "$APP"
cat >"$APP/Dockerfile" <<'EOF'
FROM busybox
WORKDIR /app
ADD . /app
RUN chmod +x /app/app.sh && echo built > /app/stamp
RUN cat /app/stamp
EXPOSE 80
ENV NAME=World
CMD ["/app/app.sh"]
EOF
printf '#!/bin/sh\necho "Hello $NAME"\n' >"$APP/app.sh"
printf 'v1\n' >"$APP/data.txt"

MULTI=$WORK/multi
mkdir -p "$MULTI"
cat >"$MULTI/Dockerfile" <<'EOF'
FROM busybox AS one
RUN sleep 1 && echo one > /one
FROM busybox AS two
RUN sleep 1 && echo two > /two
FROM busybox
COPY --from=one /one /one
COPY --from=two /two /two
CMD ["cat", "/one", "/two"]
EOF

# Median wall time in ms of `docker build` with the given arguments,
# `prep` run before each build.
time_build() { # prep-command build-args...
    local prep=$1 times=() t0
    shift
    for _ in $(seq "$RUNS"); do
        eval "$prep"
        t0=$(now_us)
        "$DOCKER" build -q "$@" >/dev/null 2>"$WORK/build.err" || { cat "$WORK/build.err" >&2; return 1; }
        times+=($(( $(now_us) - t0 )))
    done
    printf '%s\n' "${times[@]}" | median | awk '{printf "%.0f", $1/1000}'
}

measure() { # name socket
    export DOCKER_HOST="unix://$2"
    export DOCKER_BUILDKIT=0
    "$DOCKER" load -i "$FIXTURES/busybox.tar" >/dev/null
    local cold nochange changed multi n=0
    cold=$(time_build : --no-cache -t app "$APP")
    nochange=$(time_build : -t app "$APP")
    changed=$(time_build 'n=$((n+1)); echo "v$n" >"$APP/data.txt"' -t app "$APP")
    multi=$(time_build : --no-cache -t multi "$MULTI")
    # The no-change rebuild again through the API alone (bench/build_api.py),
    # where the CLI's own start-up does not hide the daemon's work.
    tar -C "$APP" -cf "$WORK/app.tar" .
    local api
    api=$(python3 bench/build_api.py "$2" "$WORK/app.tar" app "$RUNS")
    local out
    out=$("$DOCKER" run --rm app)
    [ "$out" = "Hello World" ] || echo "$1: the app image printed: $out" >&2
    bench_figure "build: app cold, ms" "$1" "$cold" ms
    bench_figure "build: no-change rebuild, ms" "$1" "$nochange" ms
    bench_figure "build: one file changed, ms" "$1" "$changed" ms
    bench_figure "build: two-stage cold, ms" "$1" "$multi" ms
    bench_figure "build: no-change rebuild via API, ms" "$1" "$api" ms
    printf '%-8s  app cold: %6s ms   no-change rebuild: %6s ms   one file changed: %6s ms   two-stage cold: %6s ms   no-change rebuild via API: %6s ms   (medians of %s)\n' \
        "$1" "$cold" "$nochange" "$changed" "$multi" "$api" "$RUNS"
    unset DOCKER_HOST
}

start_berthd "$WORK/berthd" "berth-bench-build-$$"
wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
measure berthd "$DAEMON_SOCK"

if command -v dockerd >/dev/null; then
    start_dockerd "$WORK/dockerd" bench "dockerd-bench-build-$$"
    wait_sock "$DAEMON_SOCK" "$DAEMON_PID"
    measure dockerd "$DAEMON_SOCK"
else
    echo "dockerd not installed: berthd figures only"
fi
