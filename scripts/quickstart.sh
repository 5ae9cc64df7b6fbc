#!/usr/bin/env bash
# Build holdfast and run the main job against the embedded default, a local vault:
# create the vault (once), back up PATH (default: this checkout's docs/), list the
# recovery points, verify every stored byte, restore into a scratch folder and compare.
#
#   bash scripts/quickstart.sh [PATH]
#
# The vault lives in ./holdfast-vault; the demo passphrase comes from HOLDFAST_PASSPHRASE
# (default "quickstart-demo" — choose your own for anything real).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(realpath "${1:-docs}")
export HOLDFAST_VAULT=${HOLDFAST_VAULT:-$PWD/holdfast-vault}
export HOLDFAST_PASSPHRASE=${HOLDFAST_PASSPHRASE:-quickstart-demo}

cargo build --release --locked -q
hf() { ./target/release/holdfast "$@"; }

[ -e "$HOLDFAST_VAULT/config" ] || hf init
hf backup "$SRC" --tag quickstart
hf points
hf verify --read-data
target=$(mktemp -d)
hf restore latest --target "$target"
diff -r "$SRC" "$target$SRC" && echo "restored copy is identical: $target$SRC"
