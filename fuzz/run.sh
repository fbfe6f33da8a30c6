#!/usr/bin/env bash
# Runs every fuzz target (or the ones named after the time) for the given number of seconds
# each, default 60, and prints per target the executions and the coverage libFuzzer reached.
# Fails if any target crashed, timed out (-timeout=10) or ran out of memory
# (-rss_limit_mb=2048); the crashing input is in fuzz/artifacts/<target>/. Inputs go up to
# 64 KiB (-max_len=65536, FUZZ_MAX_LEN), long enough for bodies with tens of thousands of
# metadata entries.
#
#   fuzz/run.sh [seconds] [target…]
#
# Environment: FUZZ_SANITIZER (none | address, default none: the core forbids unsafe code, so
# the sanitizer mostly costs speed), FUZZ_JOBS (targets run at once, default 1),
# CARGO_TARGET_DIR (default fuzz/target).
set -euo pipefail

seconds="${1:-60}"
shift || true
fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
cd "$fuzz_dir/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

# cargo-fuzz passes -Z flags; this lets a stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
sanitizer="${FUZZ_SANITIZER:-none}"
jobs="${FUZZ_JOBS:-1}"

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build --sanitizer "$sanitizer"

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

run_one() {
    local target="$1" log="$logs/$1.log" rc=0
    mkdir -p "fuzz/corpus/$target"
    cargo fuzz run --sanitizer "$sanitizer" "$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -max_len="${FUZZ_MAX_LEN:-65536}" \
        >"$log" 2>&1 || rc=$?
    echo "$rc" >"$logs/$target.rc"
}

running=0
for target in "${targets[@]}"; do
    run_one "$target" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait || true

failed=()
printf '\n%-22s %12s %8s  %s\n' target executions cov result
for target in "${targets[@]}"; do
    log="$logs/$target.log"
    rc="$(cat "$logs/$target.rc" 2>/dev/null || echo 1)"
    execs="$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -n1 | awk '{print $2}')"
    cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n1 | awk '{print $2}')"
    result=ok
    if [ "$rc" != 0 ]; then
        result="FAILED (exit $rc)"
        failed+=("$target")
    fi
    printf '%-22s %12s %8s  %s\n' "$target" "${execs:-?}" "${cov:-?}" "$result"
done

for target in "${failed[@]}"; do
    printf '\n=== %s ===\n' "$target"
    grep -E -A4 'panicked at|ERROR: libFuzzer|Test unit written|out-of-memory' \
        "$logs/$target.log" | head -n 20 || true
    tail -n 30 "$logs/$target.log"
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzzing failed: ${failed[*]}" >&2
    exit 1
fi
echo "all ${#targets[@]} targets ran ${seconds}s without a crash"
