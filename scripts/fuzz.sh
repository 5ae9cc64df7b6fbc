#!/usr/bin/env bash
# Run fuzz targets (default: all) for RUNS executions each (default 10 million), one after the
# other on one core, and print one line per target: executions, seconds, corpus size, result.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); the machine's stable toolchain is told to
# accept cargo-fuzz's nightly flags with RUSTC_BOOTSTRAP=1. Crashes land in
# fuzz/artifacts/<target>/ and make the script exit non-zero.
#
#   RUNS=10000000 scripts/fuzz.sh                # every target (the figure in docs/fuzzing.md)
#   RUNS=100000 scripts/fuzz.sh tree envelope    # a quick smoke run of two
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
export RUSTC_BOOTSTRAP=1
RUNS=${RUNS:-10000000}
SANITIZER=${SANITIZER:-none}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
mkdir -p logs
cargo fuzz build -s "$SANITIZER" >logs/build.log 2>&1 || { cat logs/build.log; exit 1; }
status=0
printf '%-12s %12s %8s %8s  %s\n' target executions seconds corpus result
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    start=$(date +%s)
    nice -n 10 cargo fuzz run -s "$SANITIZER" "$t" "corpus/$t" -- \
        -runs="$RUNS" -max_len=8192 -rss_limit_mb=4096 -print_final_stats=1 \
        >"logs/$t.log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "logs/$t.log" | grep -Eo '[0-9]+$' | tail -1)
    corpus=$(find "corpus/$t" -type f | wc -l)
    if [ "$rc" -eq 0 ]; then result=ok; else result="FAILED (rc $rc, see fuzz/logs/$t.log)"; status=1; fi
    printf '%-12s %12s %8s %8s  %s\n' "$t" "${execs:-?}" "$secs" "$corpus" "$result"
done
exit $status
