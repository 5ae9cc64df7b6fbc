#!/usr/bin/env bash
# What the plan layer costs: `holdfast run R` (catalog, child processes, retention, prune)
# against the same backup and forget as bare commands, with hyperfine; and the scheduler
# daemon's start latency and memory with many resources on a seconds schedule.
#
#   bash bench/daemon.sh                # RUNS=10 hyperfine runs, 20 resources for 60 s
#   RESOURCES=50 SECONDS_UP=120 bash bench/daemon.sh
#   HOLDFAST=/tmp/old/holdfast bash bench/daemon.sh   # another build
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-10}
RESOURCES=${RESOURCES:-20}
SECONDS_UP=${SECONDS_UP:-60}
DATA=${DATA:-/usr/share/doc}
WORK=${WORK:-/tmp/hf-bench-daemon}

command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; }
# HOLDFAST=/path/to/holdfast compares another build (then nothing is built).
if [ -z "${HOLDFAST:-}" ]; then cargo build --release -q -p holdfast-cli; fi
HF=${HOLDFAST:-${CARGO_TARGET_DIR:-$PWD/target}/release/holdfast}
rm -rf "$WORK" && mkdir -p "$WORK"
echo "correct horse battery" > "$WORK/pass"
export HOLDFAST_PASSPHRASE_FILE="$WORK/pass"
"$HF" --vault "$WORK/direct" init -q
"$HF" --vault "$WORK/planned" init -q
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/plan.toml" <<EOF
[daemon]
state_dir = "$WORK/state"
listen = "127.0.0.1:$port"
[vaults.main]
url = "$WORK/planned"
passphrase_file = "$WORK/pass"
[categories.docs]
schedule = "0 2 * * *"
vault = "main"
[categories.docs.retention]
keep_last = 3
[resources.docs]
kind = "files"
category = "docs"
paths = ["$DATA"]
EOF
du -sh "$DATA" | sed 's/^/data: /'
# Warm both vaults with a first backup so the timed runs are incremental (the daily case).
"$HF" --vault "$WORK/direct" backup -q --resource docs "$DATA"
"$HF" run docs --plan "$WORK/plan.toml" -q
hyperfine -N --warmup 1 --runs "$RUNS" --export-markdown "$WORK/run.md" \
  -n 'backup + forget (bare commands)' \
  "bash -c '$HF --vault $WORK/direct backup -q --resource docs $DATA && $HF --vault $WORK/direct forget -q --resource docs --keep-last 3 && $HF --vault $WORK/direct prune -q'" \
  -n 'holdfast run (plan, catalog, children)' \
  "$HF run docs --plan $WORK/plan.toml -q"
cat "$WORK/run.md"

# The daemon: RESOURCES command exports every 10 s for SECONDS_UP seconds, two jobs at once
# (this machine has 2 cores); each run is a backup and a retention child (prune off).
{
  cat <<EOF
[daemon]
state_dir = "$WORK/dstate"
listen = "127.0.0.1:$port"
max_jobs = 2
max_jobs_per_vault = 2
prune = false
shutdown_grace = "10s"
[vaults.main]
url = "$WORK/planned"
passphrase_file = "$WORK/pass"
[categories.often]
schedule = "*/10 * * * * *"
start_window = "1m"
vault = "main"
[categories.often.retention]
keep_last = 2
EOF
  for i in $(seq 1 "$RESOURCES"); do
    printf '[resources.r%s]\nkind = "command"\ncategory = "often"\ncommand = "echo %s"\nname = "r.txt"\n' "$i" "$i"
  done
} > "$WORK/daemon.toml"
"$HF" daemon --plan "$WORK/daemon.toml" 2>"$WORK/daemon.log" &
pid=$!
sleep "$SECONDS_UP"
rss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
kill -TERM $pid
wait $pid || true
"$HF" --json jobs --state-dir "$WORK/dstate" --kind backup --limit 0 > "$WORK/jobs.json"
python3 - "$WORK/jobs.json" "$rss" "$RESOURCES" "$SECONDS_UP" <<'EOF'
import json, statistics, sys
jobs = json.load(open(sys.argv[1]))
sched = [j for j in jobs if j["trigger"] == "schedule" and j["started_ns"]]
lat = sorted((j["started_ns"] - j["scheduled_ns"]) / 1e6 for j in sched)
took = sorted((j["ended_ns"] - j["started_ns"]) / 1e6 for j in sched if j["ended_ns"])
states = {}
for j in jobs:
    states[j["state"]] = states.get(j["state"], 0) + 1
p95 = lambda v: v[min(len(v) - 1, int(len(v) * 0.95))]
print(f"daemon: {sys.argv[3]} resources every 10 s for {sys.argv[4]} s: {len(jobs)} backup jobs {states}")
print(f"  start latency after the scheduled time: median {statistics.median(lat):.0f} ms, p95 {p95(lat):.0f} ms")
print(f"  backup job (child + catalog) median {statistics.median(took):.0f} ms")
print(f"  daemon peak RSS {int(sys.argv[2]) / 1024:.1f} MiB")
EOF
