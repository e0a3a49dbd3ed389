#!/usr/bin/env bash
# Runs berth's whole test suite (as root): unit tests and the integration
# tests, each of which starts its own berthd on temp dirs and drives it with
# the docker CLI, docker-py and curl. Installs what it needs first
# (scripts/deps.sh is idempotent: a no-op when everything is there).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: the tests need root" >&2; exit 1; }

scripts/deps.sh

cargo build --workspace --bins
mkdir -p target/fixtures
[ -f target/fixtures/busybox.tar ] || rootfs-fixtures/build.sh target/fixtures
[ -f target/fixtures/python.tar ] || rootfs-fixtures/build-python.sh target/fixtures
export BERTH_FIXTURES=$PWD/target/fixtures
threads="${BERTH_TEST_THREADS:-4}"
# The short forms of the reliability suite (crash loop, leak soak, API
# fuzzer) first, so their figures can be printed; then everything else.
reliability=(kill9_at_random_points_converges run_exec_rm_cycles_leak_nothing
    generated_requests_never_fail_the_daemon raw_http_abuse_is_refused_cleanly)
export BERTH_FIGURES_FILE=$PWD/target/reliability-figures.txt
: >"$BERTH_FIGURES_FILE"
status=0
cargo test -p berth-tests --test containers_crash --test reliability_leaks --test api_fuzz \
    -- --test-threads="$threads" "${reliability[@]}" || status=1
echo "== reliability figures (the long forms: scripts/reliability.sh)"
cat "$BERTH_FIGURES_FILE"
skips=()
for t in "${reliability[@]}"; do skips+=(--skip "$t"); done
cargo test --workspace --no-fail-fast -- --test-threads="$threads" "${skips[@]}" || status=1
# The static berth-shim and berth-runtime that install.sh ships
# (scripts/build-release.sh) where the musl target is installed: the shim's
# and the runtime's own tests and the log, exec and attach ones again, with
# them in place of the glibc-linked ones.
musl=x86_64-unknown-linux-musl
if [ -d "$(rustc --print sysroot)/lib/rustlib/$musl" ]; then
    static=$PWD/target/static-bins
    if cargo build -p berth-shim -p berth-runtime --target "$musl"; then
        mkdir -p "$static"
        ln -f target/debug/berthd "target/$musl/debug/berth-runtime" \
            "target/$musl/debug/berth-shim" "$static/"
        BERTH_BIN_DIR=$static cargo test -p berth-tests --test shim_protocol --test logs_cli \
            --test exec_cli --test attach_detach --test runtime_lifecycle \
            --test runtime_security --test runtime_seccomp --test runtime_cgroups \
            --test runtime_tty -- --test-threads="$threads" || status=1
    else
        status=1
    fi
fi
# The short form of the coverage-guided fuzzing: each cargo-fuzz target for
# BERTH_FUZZ_SECONDS (0 skips it; scripts/reliability.sh runs the long form).
fuzz_secs="${BERTH_FUZZ_SECONDS:-20}"
if [ "$fuzz_secs" != 0 ]; then
    scripts/fuzz.sh "$fuzz_secs" || status=1
fi
echo "== reliability figures"
cat "$BERTH_FIGURES_FILE"
exit "$status"
