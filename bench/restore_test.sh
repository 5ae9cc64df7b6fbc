#!/usr/bin/env bash
# The overhead of a restore test over the bare restore, for a pgbench database.
#
#   bash bench/restore_test.sh            # SCALE=14 (~210 MB of tables), as root
#   RUNS=5 SCALE=5 bash bench/restore_test.sh
#
# Backs up the pgbench database (logical) once, then per run:
#   bare:  a server started beforehand by this script, then `holdfast restore latest:bench
#          --to-postgres` into it (the restore alone: fetch, pg_restore);
#   test:  `holdfast restore-test run bench` (scratch server made and started, the same
#          restore, pg_amcheck, row counts and a SQL check, the server stopped and removed).
# Prints each run's wall times and the test's phases; the overhead is test - bare, and the
# issue's target is start + builtin_check + checks <= 5 s.
# Needs: target/release/holdfast, PostgreSQL on PATH (initdb beside the other tools).
set -euo pipefail
SCALE=${SCALE:-14}
RUNS=${RUNS:-3}
WORK=${WORK:-/tmp/hf-rtbench}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HF=${HF:-$ROOT/target/release/holdfast}
PGBIN=$(dirname "$(readlink -f "$(command -v initdb)")")
PORT=${PORT:-55442}
BPORT=${BPORT:-55443}
[ -x "$HF" ] || (cd "$ROOT" && cargo build --release -q)

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
stop_all() {
  for d in "$WORK"/src "$WORK"/bare; do
    [ -f "$d/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
  done
}
trap stop_all EXIT
stop_all
rm -rf "$WORK"; mkdir -p "$WORK/tmp"; chmod 711 "$WORK" "$WORK/tmp"
[ "$(id -u)" = 0 ] && chown postgres: "$WORK"
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2-$1:.2f}')"; }
start_server() { # dir port
  as_pg "$PGBIN/initdb" -D "$1" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
  printf "port = %s\nunix_socket_directories = '%s'\nlisten_addresses = ''\nfsync = off\nfull_page_writes = off\nsynchronous_commit = off\nmax_wal_size = 4GB\n" \
    "$2" "$WORK" >> "$1/postgresql.conf"
  as_pg "$PGBIN/pg_ctl" -D "$1" -l "$1.log" -w start >/dev/null
}

export HOLDFAST_VAULT=$WORK/vault HOLDFAST_CACHE_DIR=$WORK/cache HOLDFAST_PASSPHRASE=bench
export HOLDFAST_KDF_MEMORY_KIB=47104 TMPDIR=$WORK/tmp
"$HF" -q init
start_server "$WORK/src" $PORT
as_pg "$PGBIN/psql" -X -q -h "$WORK" -p $PORT -U postgres -c "CREATE DATABASE app" postgres
echo "pgbench -i -s $SCALE ..."
as_pg "$PGBIN/pgbench" -h "$WORK" -p $PORT -U postgres -i -s "$SCALE" -q app >/dev/null 2>&1
SIZE=$(as_pg "$PGBIN/psql" -X -At -h "$WORK" -p $PORT -U postgres -c "SELECT pg_database_size('app') / 1048576" postgres)
SRC="postgresql://postgres@/postgres?host=$WORK&port=$PORT"
t0=$(now); "$HF" -q backup --postgres "$SRC" --resource bench; t1=$(now)
echo "database app: ${SIZE} MiB; logical backup $(secs $t0 $t1) s"
cat > "$WORK/plan.toml" <<PLAN
[vaults.main]
url = "$WORK/vault"
passphrase_env = "HOLDFAST_PASSPHRASE"

[categories.bench]
schedule = "0 2 * * *"
vault = "main"
[categories.bench.retention]
keep_last = 5

[resources.bench]
kind = "postgres"
category = "bench"
url = "$SRC"

[restore_tests.bench]
resources = ["bench"]
checks = [{ row_counts = "match" }, { sql = "select count(*) > 0 from pgbench_accounts" }]
PLAN
for i in $(seq "$RUNS"); do
  rm -rf "$WORK/bare"; start_server "$WORK/bare" $BPORT
  t0=$(now)
  "$HF" -q restore latest:bench --to-postgres "postgresql://postgres@/postgres?host=$WORK&port=$BPORT"
  t1=$(now)
  as_pg "$PGBIN/pg_ctl" -D "$WORK/bare" -m immediate stop >/dev/null
  t2=$(now)
  "$HF" --json restore-test run bench --plan "$WORK/plan.toml" > "$WORK/test-$i.json"
  t3=$(now)
  python3 - "$WORK/test-$i.json" "$(secs $t0 $t1)" "$(secs $t2 $t3)" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
ph = {p["name"]: p["seconds"] for p in r["phases"]}
bare, test = float(sys.argv[2]), float(sys.argv[3])
over = ph.get("start", 0) + ph.get("builtin_check", 0) + ph.get("checks", 0)
print(f"bare restore {bare:.2f} s | restore test {test:.2f} s (rto {r['rto_seconds']:.2f}, passed {r['passed']}) | "
      + ", ".join(f"{k} {v:.2f}" for k, v in ph.items())
      + f" | start+checks {over:.2f} s | test-bare {test-bare:.2f} s | test/bare {test/bare:.2f}")
PY
done
[ -z "$(ls -A "$WORK/tmp")" ] && echo "TMPDIR empty after the tests" || { echo "LEFT in TMPDIR:"; ls -la "$WORK/tmp"; }
