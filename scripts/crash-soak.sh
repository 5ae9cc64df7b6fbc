#!/usr/bin/env bash
# Longer crash trials than CI runs: kill -9 at random moments of backup, prune and copy.
# Usage: TRIALS=200 scripts/crash-soak.sh   (each test prints its random seed)
set -euo pipefail
cd "$(dirname "$0")/.."
export HOLDFAST_CRASH_TRIALS="${TRIALS:-200}"
cargo test --release -p holdfast-cli --test crash --test lifecycle_crash -- --nocapture
