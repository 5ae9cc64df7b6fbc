#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, property, integration, crash and S3 tests.
# `.ci/run` installs the S3 test server first; run that on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
log="${CARGO_TARGET_DIR:-target}/test.log"
mkdir -p "$(dirname "$log")"
cargo test --workspace --locked 2>&1 | tee "$log"
passed=$(grep -Eo 'test result: ok\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
echo "${passed} passed, ${failed} failed"
