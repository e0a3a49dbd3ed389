#!/usr/bin/env bash
# Runs berth's coverage-guided fuzz targets (fuzz/fuzz_targets: the image
# reference parser, layer tar extraction, the multiplexed stream decoder,
# the container JSON bodies) for SECONDS each (default 20), then prints
# the figures. libFuzzer through libfuzzer-sys, on the stable toolchain:
# coverage comes from LLVM's sancov pass (stable -C flags); no sanitizer
# (that needs nightly), which Rust's checks (bounds, overflow, debug
# assertions) stand in for. A crash leaves its input in
# fuzz/artifacts/TARGET/ and fails the script; the corpus grows in
# target/fuzz/corpus/TARGET. tar_unpack needs root (it extracts in a
# private mount namespace, chrooted into a tmpfs).
# Usage: scripts/fuzz.sh [SECONDS]   (BERTH_FUZZ_TARGETS="a b" for some)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
targets="${BERTH_FUZZ_TARGETS:-reference mux_stream json_bodies tar_unpack}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="$PWD/target/fuzz"
# What cargo-fuzz passes, less -Zsanitizer. --target keeps the flags off
# build scripts.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
cargo build --release --manifest-path fuzz/Cargo.toml --target "$triple" --bins
bin="target/fuzz/$triple/release"
failed=0
summary=""
for t in $targets; do
    # Relative paths: tar_unpack chroots, its working directory stays.
    corpus="target/fuzz/corpus/$t"
    artifacts="fuzz/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    seeds=()
    [ -d "fuzz/seeds/$t" ] && seeds=("fuzz/seeds/$t")
    log="target/fuzz/$t.log"
    echo "fuzz: $t for ${secs}s"
    if "$bin/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 \
        "$corpus" "${seeds[@]}" >"$log" 2>&1; then
        result=ok
    else
        result="FAILED (see $log and $artifacts/)"
        failed=1
        grep -E "panicked|ERROR|SUMMARY" -A 4 "$log" | head -20 >&2 || true
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    units=$(ls "$corpus" | wc -l)
    summary+="$(printf '  %-12s %10s runs  coverage %5s  corpus %5s  %s' "$t" "${runs:-?}" "${cov:-?}" "$units" "$result")"$'\n'
done
rmdir /tmp/berth-fuzz-tar-jail 2>/dev/null || true
echo "fuzz: ${secs}s per target"
printf '%s' "$summary"
exit "$failed"
