#!/usr/bin/env bash
# PostgreSQL physical backups: holdfast vs pgBackRest on the same pgbench cluster, same run.
#
#   bash bench/pg.sh                 # SCALE=70 (~1 GB), as root (servers run as postgres)
#   SCALE=5 bash bench/pg.sh         # quick
#
# Measures (wall time via date, peak RSS via GNU time): full base backup, per-segment WAL
# archiving (a fresh process per 16 MiB segment, as archive_command runs it), restore of the
# latest state including WAL replay until the server is promoted, and repository size.
# Needs: target/release/holdfast (cargo build --release), PostgreSQL on PATH (initdb beside
# pg_ctl), pgbackrest (apt-get install -y pgbackrest), GNU time.
set -euo pipefail
SCALE=${SCALE:-70}
WORK=${WORK:-/tmp/hf-pgbench}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HF=${HF:-$ROOT/target/release/holdfast}
PGBIN=$(dirname "$(readlink -f "$(command -v initdb)")")
PORT=${PORT:-55432}
command -v pgbackrest >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbackrest >/dev/null
[ -x /usr/bin/time ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
[ -x "$HF" ] || (cd "$ROOT" && cargo build --release -q)

as_pg() { runuser -u postgres -- "$@"; }
stop_all() {
  for d in "$WORK"/data "$WORK"/r-hf "$WORK"/r-pgbr; do
    [ -f "$d/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
  done
}
trap stop_all EXIT
stop_all
rm -rf "$WORK"; mkdir -p "$WORK"/segs "$WORK"/pgbr-log "$WORK"/pgbr-lock "$WORK"/pgbr-spool; chown -R postgres: "$WORK"
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2-$1:.2f}')"; }
psql_() { as_pg "$PGBIN/psql" -X -At -h "$WORK" -p "$1" -d postgres -c "$2"; }

# holdfast vault: full key for restore, a write-only key file for the database host.
export HOLDFAST_KDF_MEMORY_KIB=47104
echo "bench pass" > "$WORK/pass"; chown postgres: "$WORK/pass"; chmod 600 "$WORK/pass"
HFENV="HOLDFAST_VAULT=$WORK/hf-vault HOLDFAST_CACHE_DIR=$WORK/hf-cache"
as_pg env $HFENV HOLDFAST_PASSPHRASE_FILE="$WORK/pass" "$HF" -q init
as_pg env $HFENV HOLDFAST_PASSPHRASE_FILE="$WORK/pass" "$HF" -q key create-backup-only --output "$WORK/wo.key"

cat > "$WORK/pgbr.conf" <<CONF
[global]
repo1-path=$WORK/pgbr-repo
log-path=$WORK/pgbr-log
lock-path=$WORK/pgbr-lock
spool-path=$WORK/pgbr-spool
log-level-console=warn
compress-type=zst
compress-level=3
process-max=2
start-fast=y
[bench]
pg1-path=$WORK/data
pg1-port=$PORT
pg1-socket-path=$WORK
CONF
chown postgres: "$WORK/pgbr.conf"
PGBR="pgbackrest --config=$WORK/pgbr.conf --stanza=bench"

as_pg "$PGBIN/initdb" -D "$WORK/data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
cat >> "$WORK/data/postgresql.conf" <<CONF
port = $PORT
unix_socket_directories = '$WORK'
listen_addresses = ''
wal_level = replica
max_wal_senders = 4
archive_mode = on
archive_command = '$HFENV HOLDFAST_KEY_FILE=$WORK/wo.key $HF --quiet pg wal-push --resource bench %p && $PGBR archive-push %p'
max_wal_size = 4GB
checkpoint_timeout = 30min
CONF
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w start >/dev/null
as_pg $PGBR stanza-create >/dev/null
echo "pgbench -i -s $SCALE ..."
as_pg "$PGBIN/pgbench" -h "$WORK" -p $PORT -i -s "$SCALE" -q postgres >/dev/null 2>&1
psql_ $PORT "CHECKPOINT" >/dev/null
DBSIZE=$(du -sm --exclude=pg_wal "$WORK/data" | cut -f1)

# 1. Full base backup
t0=$(now)
as_pg /usr/bin/time -f "%M" -o "$WORK/rss-hf-base" env $HFENV HOLDFAST_KEY_FILE="$WORK/wo.key" \
  "$HF" -q pg basebackup --resource bench --postgres "postgresql:///postgres?host=$WORK&port=$PORT&user=postgres"
t1=$(now)
as_pg /usr/bin/time -f "%M" -o "$WORK/rss-pgbr-base" $PGBR --type=full backup
t2=$(now)
HF_BASE=$(secs $t0 $t1); PGBR_BASE=$(secs $t1 $t2)

# 2. WAL: write for a while, then archive the same segments with each tool
as_pg "$PGBIN/pgbench" -h "$WORK" -p $PORT -c 2 -T "${WAL_SECONDS:-30}" -n postgres >/dev/null 2>&1
psql_ $PORT "SELECT pg_switch_wal()" >/dev/null
sleep 2
ls "$WORK/data/pg_wal" | grep -E '^[0-9A-F]{24}$' | head -10 | while read -r f; do cp "$WORK/data/pg_wal/$f" "$WORK/segs/"; done
chown -R postgres: "$WORK/segs"
NSEG=$(ls "$WORK/segs" | wc -l)
t0=$(now)
for f in "$WORK"/segs/*; do as_pg env $HFENV HOLDFAST_KEY_FILE="$WORK/wo.key" "$HF" --quiet pg wal-push --resource segbench "$f"; done
t1=$(now)
cat >> "$WORK/pgbr.conf" <<CONF
[segbench]
pg1-path=$WORK/data
pg1-port=$PORT
pg1-socket-path=$WORK
CONF
as_pg pgbackrest --config="$WORK/pgbr.conf" --stanza=segbench stanza-create >/dev/null
t2=$(now)
for f in "$WORK"/segs/*; do as_pg pgbackrest --config="$WORK/pgbr.conf" --stanza=segbench archive-push "$f"; done
t3=$(now)
HF_SEG=$(python3 -c "print(f'{($t1-$t0)/$NSEG*1000:.0f}')"); PGBR_SEG=$(python3 -c "print(f'{($t3-$t2)/$NSEG*1000:.0f}')")

# make sure everything up to now is archived by both
psql_ $PORT "SELECT pg_switch_wal()" >/dev/null
for _ in $(seq 1 120); do
  [ "$(psql_ $PORT "SELECT failed_count = 0 OR last_archived_time > last_failed_time FROM pg_stat_archiver")" = t ] || true
  want=$(psql_ $PORT "SELECT pg_walfile_name(pg_current_wal_lsn())")
  last=$(psql_ $PORT "SELECT coalesce(last_archived_wal,'') FROM pg_stat_archiver")
  [[ "$last" > "$want" || "$last" == "$want" ]] && break
  psql_ $PORT "SELECT pg_switch_wal()" >/dev/null; sleep 1
done
ROWS=$(psql_ $PORT "SELECT count(*) FROM pgbench_history")

# 3. Restore the latest state, replay WAL, until promoted
start_restored() { # dir port
  cat >> "$1/postgresql.auto.conf" <<CONF
port = $2
archive_mode = off
CONF
  chown -R postgres: "$1"
  as_pg "$PGBIN/pg_ctl" -D "$1" -l "$1.log" -w -t 3600 start >/dev/null
  until [ "$(psql_ "$2" "SELECT pg_is_in_recovery()" 2>/dev/null)" = f ]; do sleep 0.2; done
}
t0=$(now)
/usr/bin/time -f "%M" -o "$WORK/rss-hf-restore" env $HFENV HOLDFAST_PASSPHRASE_FILE="$WORK/pass" \
  "$HF" -q pg restore --resource bench --latest --data-dir "$WORK/r-hf"
start_restored "$WORK/r-hf" $((PORT+1))
t1=$(now)
as_pg /usr/bin/time -f "%M" -o "$WORK/rss-pgbr-restore" $PGBR --pg1-path="$WORK/r-pgbr" restore >/dev/null
start_restored "$WORK/r-pgbr" $((PORT+2))
t2=$(now)
HF_REST=$(secs $t0 $t1); PGBR_REST=$(secs $t1 $t2)
R1=$(psql_ $((PORT+1)) "SELECT count(*) FROM pgbench_history"); R2=$(psql_ $((PORT+2)) "SELECT count(*) FROM pgbench_history")

HF_SIZE=$(du -sm "$WORK/hf-vault" | cut -f1); PGBR_SIZE=$(du -sm "$WORK/pgbr-repo" | cut -f1)
rss() { python3 -c "print(round(int(open('$1').read().split()[-1])/1024))"; }
echo
echo "cluster: pgbench scale $SCALE, data folder ${DBSIZE} MiB without pg_wal; history rows at the end: $ROWS (restored: holdfast $R1, pgBackRest $R2)"
echo
echo "| | holdfast | pgBackRest 2.45 (zst-3, 2 processes) | holdfast / pgBackRest |"
echo "|---|---:|---:|---:|"
echo "| full base backup, s | $HF_BASE | $PGBR_BASE | $(python3 -c "print(f'{$HF_BASE/$PGBR_BASE:.2f}')") |"
echo "| base backup throughput, MiB/s | $(python3 -c "print(f'{$DBSIZE/$HF_BASE:.0f}')") | $(python3 -c "print(f'{$DBSIZE/$PGBR_BASE:.0f}')") | |"
echo "| base backup peak RSS, MiB | $(rss $WORK/rss-hf-base) | $(rss $WORK/rss-pgbr-base) | |"
echo "| WAL archive, ms per 16 MiB segment ($NSEG segments, new process each) | $HF_SEG | $PGBR_SEG | $(python3 -c "print(f'{$HF_SEG/$PGBR_SEG:.2f}')") |"
echo "| restore latest + WAL replay until promoted, s | $HF_REST | $PGBR_REST | $(python3 -c "print(f'{$HF_REST/$PGBR_REST:.2f}')") |"
echo "| restore peak RSS (tool only), MiB | $(rss $WORK/rss-hf-restore) | $(rss $WORK/rss-pgbr-restore) | |"
echo "| repository size after all of the above, MiB | $HF_SIZE | $PGBR_SIZE | $(python3 -c "print(f'{$HF_SIZE/$PGBR_SIZE:.2f}')") |"
