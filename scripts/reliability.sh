#!/usr/bin/env bash
# The reliability suite in full (CI runs short forms of the same tests in
# scripts/test.sh): kill -9 of berthd at random points (crash loop), the
# leak soak, the API fuzzer (generated requests and raw HTTP abuse), the
# host privilege and deep-tree checks, and the coverage-guided fuzz
# targets. Prints every figure at the end.
# Usage: scripts/reliability.sh [CRASH_ITERATIONS] [LEAK_CYCLES] [FUZZ_CASES] [FUZZ_SECONDS]
#        (defaults 200, 500, 300, 120; seeds are fresh and printed)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "reliability.sh: needs root" >&2; exit 1; }
cargo build --workspace --bins
mkdir -p target/fixtures
[ -f target/fixtures/busybox.tar ] || rootfs-fixtures/build.sh target/fixtures
export BERTH_FIXTURES=$PWD/target/fixtures
export BERTH_FIGURES_FILE=$PWD/target/reliability-figures.txt
: >"$BERTH_FIGURES_FILE"
export BERTH_CRASH_ITERATIONS="${1:-200}"
export BERTH_LEAK_CYCLES="${2:-500}"
export BERTH_FUZZ_CASES="${3:-300}"
export BERTH_FUZZ_SEED="${BERTH_FUZZ_SEED:-$(date +%s)}"
fuzz_seconds="${4:-120}"
status=0
run() {
    echo "== $*"
    "$@" || status=1
}
run cargo test -p berth-tests --test containers_crash -- --test-threads=2
run cargo test -p berth-tests --test reliability_leaks
run cargo test -p berth-tests --test api_fuzz -- --test-threads=1
run cargo test -p berth-tests --test security_host -- --test-threads=2
if scripts/fuzz.sh "$fuzz_seconds" >target/fuzz-summary.txt 2>&1; then
    fuzz_result=ok
else
    fuzz_result=FAILED
    status=1
fi
echo
echo "== reliability figures (BERTH_FUZZ_SEED=$BERTH_FUZZ_SEED)"
cat "$BERTH_FIGURES_FILE"
sed -n '/^fuzz: [0-9]*s per target/,$p' target/fuzz-summary.txt
echo "coverage-guided fuzzing: $fuzz_result"
exit "$status"
