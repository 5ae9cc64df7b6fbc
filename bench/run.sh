#!/usr/bin/env bash
# Benchmark holdfast against restic, rustic and borg on the same data, on the
# same machine, in the same run.  See bench/README.md for details.
#
#   bash bench/run.sh                       # full run, REPS=3
#   SMOKE=1 bash bench/run.sh               # tiny dataset, REPS=1
#   TOOLS="holdfast restic" REPS=5 bash bench/run.sh
set -euo pipefail

# ---------------------------------------------------------------- settings --
SMOKE=${SMOKE:-0}
if [[ $SMOKE == 1 ]]; then
    WORK=${WORK:-/tmp/hf-bench-smoke}
    REPS=${REPS:-1}
    PG_SCALE=${PG_SCALE:-1}
    RANDOM_MIB=${RANDOM_MIB:-2}          # random half of large.bin
    TEXT_MIB=${TEXT_MIB:-2}              # compressible half of large.bin
    APPEND_KIB=${APPEND_KIB:-64}         # appended to large.bin in gen2
    PY_EDITS=${PY_EDITS:-20}             # python files modified in gen2
    NEW_FILES=${NEW_FILES:-10}           # new small files in gen2
    DUMP_REGIONS=${DUMP_REGIONS:-5}      # edited regions in the SQL dump
    DUMP_REGION_LINES=${DUMP_REGION_LINES:-50}
else
    WORK=${WORK:-/tmp/hf-bench}
    REPS=${REPS:-3}
    PG_SCALE=${PG_SCALE:-20}
    RANDOM_MIB=${RANDOM_MIB:-128}
    TEXT_MIB=${TEXT_MIB:-128}
    APPEND_KIB=${APPEND_KIB:-1024}
    PY_EDITS=${PY_EDITS:-100}
    NEW_FILES=${NEW_FILES:-50}
    DUMP_REGIONS=${DUMP_REGIONS:-5}
    DUMP_REGION_LINES=${DUMP_REGION_LINES:-600}
fi
TOOLS=${TOOLS:-"holdfast restic rustic borg"}
PY_PYCACHE=${PY_PYCACHE:-0}          # 1 = also copy __pycache__ directories
RESTORE_CHECK=${RESTORE_CHECK:-1}    # 1 = diff restored tree against source (untimed)
KEEP=${KEEP:-0}                      # 1 = keep the data copy and repos of the last repetition
# DATASET_ONLY=1: build (or check) the dataset and exit without benchmarking.

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HOLDFAST=${HOLDFAST:-$REPO_ROOT/target/release/holdfast}
RESTIC=${RESTIC:-/usr/bin/restic}
BORG=${BORG:-/usr/bin/borg}
RUSTIC=${RUSTIC:-$HOME/.cargo/bin/rustic}
GNU_TIME=${GNU_TIME:-/usr/bin/time}

# Same throw-away passphrase for every tool.
BENCH_PASS=${BENCH_PASS:-holdfast-bench-passphrase}
export HOLDFAST_PASSPHRASE=$BENCH_PASS RESTIC_PASSWORD=$BENCH_PASS \
       BORG_PASSPHRASE=$BENCH_PASS RUSTIC_PASSWORD=$BENCH_PASS
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_DISPLAY_PASSPHRASE=no
export LC_ALL=C

DS=$WORK/dataset          # master copy: gen1 tree + gen2 material (built once)
DATA=$WORK/data           # working copy that is backed up (reset per tool/rep)
RUNS=$WORK/runs           # repos, caches, restore targets
RUN_ID=$(date +%Y%m%d-%H%M%S)
LOGDIR=$WORK/logs/$RUN_ID
RAW=$LOGDIR/raw.tsv
RESULTS=$WORK/results.md

OPS=(backup1 backup2 backup3 restore verify)
declare -A OP_LABEL=(
    [backup1]="first backup"
    [backup2]="incremental backup (after edits)"
    [backup3]="no-change backup"
    [restore]="restore latest"
    [verify]="verify, read all data"
)

NOTES=()
note() { NOTES+=("$*"); echo "NOTE: $*" >&2; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { echo "ERROR: $*" >&2; exit 1; }

[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive integer (got '$REPS')"

# ------------------------------------------------------------ prerequisites --
if [[ ! -x $GNU_TIME ]]; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        log "GNU time missing, installing it (apt-get install -y time)"
        apt-get install -y time >/dev/null || { apt-get update >/dev/null && apt-get install -y time >/dev/null; }
    fi
    [[ -x $GNU_TIME ]] || die "GNU time not found at $GNU_TIME (apt-get install -y time)"
fi
"$GNU_TIME" --version 2>&1 | grep -q 'GNU' || die "$GNU_TIME is not GNU time"
for c in python3 tar diff du awk sort truncate; do
    command -v "$c" >/dev/null || die "required command '$c' not found"
done

tool_bin() {
    case $1 in
        holdfast) echo "$HOLDFAST" ;;
        restic) echo "$RESTIC" ;;
        rustic) echo "$RUSTIC" ;;
        borg) echo "$BORG" ;;
        *) return 1 ;;
    esac
}

ACTIVE=()
for t in $TOOLS; do
    if ! b=$(tool_bin "$t"); then
        note "unknown tool '$t' in TOOLS, ignored"
        continue
    fi
    if [[ -x $b ]]; then
        ACTIVE+=("$t")
    else
        note "$t skipped: binary not found or not executable at $b"
    fi
done
((${#ACTIVE[@]} > 0)) || die "no tool to benchmark (TOOLS='$TOOLS')"

mkdir -p "$WORK" "$LOGDIR"
: >"$RAW"

# ------------------------------------------------------------------ dataset --
PG_TMP=""
PG_BIN=""
PG_DATA=""
cleanup() {
    if [[ -n $PG_TMP && -d $PG_TMP ]]; then
        if [[ -n $PG_DATA && -f $PG_DATA/postmaster.pid ]]; then
            as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate stop >/dev/null 2>&1 || true
        fi
        rm -rf "$PG_TMP"
    fi
}
trap cleanup EXIT

as_pg() {
    # Run a command as the postgres user when we are root (PostgreSQL refuses
    # to run as root), in a directory that user can enter.
    if [[ $(id -u) == 0 ]]; then
        (cd "$PG_TMP" && runuser -u postgres -- "$@")
    else
        (cd "$PG_TMP" && "$@")
    fi
}

find_pg_bin() {
    local initdb
    initdb=$(command -v initdb 2>/dev/null || true)
    if [[ -n $initdb ]]; then
        dirname "$(readlink -f "$initdb")"
        return
    fi
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x $d/initdb ]] && { echo "$d"; return; }
    done
    return 1
}

free_port() {
    python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

# (b) plain-SQL pg_dump of a pgbench database.  Returns 2 when PostgreSQL is
# not installed (the dataset is then built without it); any other failure is
# fatal.  (Called from an `if`, so errexit is off in here: check every step.)
build_pg_dump() {
    local out=$1 b
    PG_BIN=$(find_pg_bin) || return 2
    for b in initdb pg_ctl pgbench pg_dump createdb; do
        [[ -x $PG_BIN/$b ]] || { echo "missing $PG_BIN/$b" >&2; return 2; }
    done
    if [[ $(id -u) == 0 ]] && ! id postgres >/dev/null 2>&1; then
        echo "running as root but there is no 'postgres' user" >&2
        return 2
    fi
    PG_TMP=$(mktemp -d /tmp/hf-bench-pg.XXXXXX) || die "mktemp failed"
    if [[ $(id -u) == 0 ]]; then chown postgres: "$PG_TMP" || die "chown $PG_TMP failed"; fi
    PG_DATA=$PG_TMP/data
    local port sock=$PG_TMP
    port=$(free_port) || die "could not find a free port"
    log "postgres: initdb in $PG_TMP (port $port, socket dir $sock)"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres --no-sync >"$LOGDIR/pg-initdb.log" 2>&1 ||
        die "initdb failed, see $LOGDIR/pg-initdb.log"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_TMP/server.log" -w \
        -o "-p $port -k $sock -c listen_addresses='' -c fsync=off" start >"$LOGDIR/pg-start.log" 2>&1 ||
        { cp "$PG_TMP/server.log" "$LOGDIR/pg-server.log" 2>/dev/null; die "postgres did not start, see $LOGDIR/pg-server.log"; }
    as_pg "$PG_BIN/createdb" -h "$sock" -p "$port" -U postgres bench || die "createdb failed"
    log "postgres: pgbench -i -s $PG_SCALE"
    as_pg "$PG_BIN/pgbench" -i -q -s "$PG_SCALE" -h "$sock" -p "$port" -U postgres bench >"$LOGDIR/pgbench-init.log" 2>&1 ||
        die "pgbench -i failed, see $LOGDIR/pgbench-init.log"
    log "postgres: pg_dump (plain SQL)"
    as_pg "$PG_BIN/pg_dump" -h "$sock" -p "$port" -U postgres -d bench >"$out" || die "pg_dump failed"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >"$LOGDIR/pg-stop.log" 2>&1 || die "pg_ctl stop failed"
    cp "$PG_TMP/server.log" "$LOGDIR/pg-server.log" 2>/dev/null
    rm -rf "$PG_TMP"
    PG_TMP=""
    return 0
}

# gen2 version of the dump: in DUMP_REGIONS evenly spaced regions of the
# pgbench_accounts COPY block, DUMP_REGION_LINES consecutive rows each get a
# new abalance value (same line count, same length class: a localized edit).
edit_dump() {
    local in=$1 out=$2 rows=$3
    awk -F'\t' -v OFS='\t' -v rows="$rows" -v nreg="$DUMP_REGIONS" -v rl="$DUMP_REGION_LINES" '
        BEGIN { for (k = 1; k <= nreg; k++) start[k] = int(rows * k / (nreg + 1)) }
        /^COPY public\.pgbench_accounts / { inacc = 1; print; next }
        inacc && /^\\\.$/ { inacc = 0; print; next }
        inacc {
            idx++
            for (k = 1; k <= nreg; k++)
                if (idx > start[k] && idx <= start[k] + rl) { $3 = (idx % 9973) - 4986; edited++; break }
            print; next
        }
        { print }
        END { print edited > "/dev/stderr" }
    ' "$in" >"$out"
}

# (c) large binary: RANDOM_MIB of /dev/urandom + TEXT_MIB of repetitive but
# not identical text (compressible, not trivially deduplicable).
build_large() {
    local out=$1
    head -c "$((RANDOM_MIB * 1024 * 1024))" /dev/urandom >"$out"
    local text_bytes=$((TEXT_MIB * 1024 * 1024))
    awk -v n="$text_bytes" 'BEGIN {
        s = 0
        for (i = 1; s < n; i++) {
            line = sprintf("record %010d key=%04x status=%s lorem ipsum dolor sit amet, consectetur\n",
                           i, (i * 7919) % 65536, (i % 7 == 0 ? "FAILED" : "ok"))
            printf "%s", line
            s += length(line)
        }
    }' >>"$out"
    truncate -s "$(((RANDOM_MIB + TEXT_MIB) * 1024 * 1024))" "$out"
}

dataset_stamp() {
    echo "smoke=$SMOKE pg_scale=$PG_SCALE random_mib=$RANDOM_MIB text_mib=$TEXT_MIB" \
         "append_kib=$APPEND_KIB py_edits=$PY_EDITS new_files=$NEW_FILES" \
         "dump_regions=$DUMP_REGIONS dump_region_lines=$DUMP_REGION_LINES pycache=$PY_PYCACHE v1"
}

build_dataset() {
    local tmp=$DS.partial
    rm -rf "$tmp" "$DS"
    mkdir -p "$tmp/gen1" "$tmp/gen2"
    local g1=$tmp/gen1 g2=$tmp/gen2
    echo "holdfast benchmark dataset root marker" >"$g1/.hf-bench-root"

    # (a) Python standard library + site-packages.
    local stdlib purelib
    stdlib=$(python3 -c 'import sysconfig;print(sysconfig.get_paths()["stdlib"])')
    purelib=$(python3 -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])')
    local -a excl=()
    [[ $PY_PYCACHE == 1 ]] || excl=(--exclude=__pycache__)
    mkdir -p "$g1/python/stdlib"
    if [[ $SMOKE == 1 ]]; then
        log "dataset: python subset (smoke) from $stdlib"
        local -a sub=()
        for m in json email http xml logging asyncio unittest; do
            [[ -e $stdlib/$m ]] && sub+=("$m")
        done
        tar -C "$stdlib" "${excl[@]}" -cf - "${sub[@]}" | tar -C "$g1/python/stdlib" -xf -
    else
        log "dataset: python stdlib $stdlib"
        tar -C "$stdlib" "${excl[@]}" -cf - . | tar -C "$g1/python/stdlib" -xf -
        case $purelib/ in
            "$stdlib"/*) : ;;  # site-packages lives inside stdlib: already copied
            *)
                log "dataset: python purelib $purelib"
                mkdir -p "$g1/python/purelib"
                tar -C "$purelib" "${excl[@]}" -cf - . | tar -C "$g1/python/purelib" -xf -
                ;;
        esac
    fi

    # (b) pg_dump of pgbench.
    mkdir -p "$g1/pg"
    local pgrc=0
    build_pg_dump "$g1/pg/bench.sql" || pgrc=$?
    if ((pgrc == 0)); then
        local rows=$((PG_SCALE * 100000)) edited
        log "dataset: gen2 dump edits"
        edited=$(edit_dump "$g1/pg/bench.sql" "$g2/bench.sql" "$rows" 2>&1 >/dev/null)
        echo "$edited" >"$g2/dump-edited-lines"
    else
        echo "pg_dump unavailable" >"$g2/no-pg"
        rmdir "$g1/pg" 2>/dev/null || true
    fi

    # (c) large binary.
    log "dataset: large binary (${RANDOM_MIB} MiB random + ${TEXT_MIB} MiB text)"
    mkdir -p "$g1/large"
    build_large "$g1/large/large.bin"

    # gen2 material.
    log "dataset: gen2 material"
    head -c "$((APPEND_KIB * 1024))" /dev/urandom >"$g2/append.bin"
    mkdir -p "$g2/new"
    local i
    for ((i = 1; i <= NEW_FILES; i++)); do
        head -c "$((1024 * (1 + i % 8)))" /dev/urandom | base64 >"$g2/new/note-$(printf %03d "$i").txt"
    done
    (cd "$g1" && find python -type f -name '*.py' | sort) >"$g2/all-py.txt"
    local total step
    total=$(wc -l <"$g2/all-py.txt")
    step=$((total / PY_EDITS)); ((step >= 1)) || step=1
    awk -v step="$step" -v max="$PY_EDITS" '(NR - 1) % step == 0 && c < max { print; c++ }' \
        "$g2/all-py.txt" >"$g2/py-edits.txt"
    rm "$g2/all-py.txt"

    dataset_stamp >"$tmp/.complete"
    mv "$tmp" "$DS"
}

if [[ -f $DS/.complete && "$(cat "$DS/.complete")" == "$(dataset_stamp)" ]]; then
    log "reusing dataset in $DS"
else
    log "building dataset in $DS"
    build_dataset
fi
HAVE_PG=1
[[ -f $DS/gen2/no-pg ]] && { HAVE_PG=0; note "PostgreSQL not available: dataset has no pg_dump part"; }

reset_data() {
    rm -rf "$DATA"
    cp -a "$DS/gen1" "$DATA"
}

apply_gen2() {
    cat "$DS/gen2/append.bin" >>"$DATA/large/large.bin"
    local f
    while IFS= read -r f; do
        printf '# holdfast-bench gen2 edit\n' >>"$DATA/$f"
    done <"$DS/gen2/py-edits.txt"
    cp -r "$DS/gen2/new" "$DATA/new"
    if [[ $HAVE_PG == 1 ]]; then
        cp "$DS/gen2/bench.sql" "$DATA/pg/bench.sql"   # in-place rewrite, same inode
    fi
}

GEN1_BYTES=$(du -sb "$DS/gen1" | cut -f1)
GEN1_FILES=$(find "$DS/gen1" -type f | wc -l)
if [[ ${DATASET_ONLY:-0} == 1 ]]; then
    echo "dataset ready in $DS/gen1: $((GEN1_BYTES / 1024 / 1024)) MiB in $GEN1_FILES files"
    du -sh "$DS"/gen1/* "$DS/gen2"
    exit 0
fi

# -------------------------------------------------------------- measuring --
# measure TOOL REP OP CMD...  -> appends "tool rep op wall rss_kib rc" to RAW
measure() {
    local tool=$1 rep=$2 op=$3
    shift 3
    local logf=$LOGDIR/$tool.r$rep.$op.log tf=$LOGDIR/.time.$tool.$rep.$op
    local rc=0
    sync
    {
        echo "# $(date -Is) $*"
    } >"$logf"
    "$GNU_TIME" -f '%e %M' -o "$tf" "$@" >>"$logf" 2>&1 || rc=$?
    local wall rss
    read -r wall rss < <(tail -n 1 "$tf")
    rm -f "$tf"
    if ok_rc "$tool" "$rc"; then
        ((rc == 0)) || note "$tool rep $rep $op exited with warning status $rc (see $logf)"
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$rep" "$op" "$wall" "$rss" "$rc" >>"$RAW"
        log "  $tool $op: ${wall}s, $((rss / 1024)) MiB"
        return 0
    fi
    note "$tool rep $rep $op FAILED with status $rc (see $logf)"
    tail -n 5 "$logf" | sed 's/^/    | /' >&2
    printf '%s\t%s\t%s\tNA\tNA\t%s\n' "$tool" "$rep" "$op" "$rc" >>"$RAW"
    return 1
}

# Exit codes that mean "completed with warnings" rather than failure.
ok_rc() {
    local tool=$1 rc=$2
    ((rc == 0)) && return 0
    case $tool in
        borg) ((rc == 1)) ;;     # borg: 1 = warning (e.g. file changed)
        restic) ((rc == 3)) ;;   # restic: 3 = snapshot created, some files unreadable
        *) return 1 ;;
    esac
}

tool_cmd() {
    # tool_cmd TOOL OP [ARG] -> prints nothing; fills global array CMD
    local tool=$1 op=$2 arg=${3:-}
    case $tool:$op in
        holdfast:init) CMD=("$HOLDFAST" --vault "$REPO" init) ;;
        holdfast:backup*) CMD=("$HOLDFAST" --vault "$REPO" backup "$DATA") ;;
        holdfast:restore) CMD=("$HOLDFAST" --vault "$REPO" restore latest --target "$arg") ;;
        holdfast:verify) CMD=("$HOLDFAST" --vault "$REPO" verify --read-data) ;;

        restic:init) CMD=("$RESTIC" -r "$REPO" init --repository-version 2) ;;
        restic:backup*) CMD=("$RESTIC" -r "$REPO" backup --compression auto "$DATA") ;;
        restic:restore) CMD=("$RESTIC" -r "$REPO" restore latest --target "$arg") ;;
        restic:verify) CMD=("$RESTIC" -r "$REPO" check --read-data) ;;

        rustic:init) CMD=("$RUSTIC" -r "$REPO" --no-progress init) ;;
        rustic:backup*) CMD=("$RUSTIC" -r "$REPO" --no-progress backup "$DATA") ;;
        rustic:restore) CMD=("$RUSTIC" -r "$REPO" --no-progress restore latest "$arg") ;;
        rustic:verify) CMD=("$RUSTIC" -r "$REPO" --no-progress check --read-data) ;;

        borg:init) CMD=("$BORG" init -e repokey-blake2 "$REPO") ;;
        borg:backup*) CMD=("$BORG" create --stats --compression zstd,3 "$REPO::gen${op#backup}" "$DATA") ;;
        # borg extract writes into the current directory.
        borg:restore) CMD=(env -C "$arg" "$BORG" extract "$REPO::gen3") ;;
        borg:verify) CMD=("$BORG" check --verify-data "$REPO") ;;
        *) die "no command for $tool $op" ;;
    esac
}

restore_check() {
    local tool=$1 rep=$2 target=$3 marker root
    marker=$(find "$target" -name .hf-bench-root -type f -print -quit)
    if [[ -z $marker ]]; then
        note "$tool rep $rep restore check FAILED: dataset root not found under $target"
        return
    fi
    root=$(dirname "$marker")
    if diff -r --no-dereference -q "$DATA" "$root" >"$LOGDIR/$tool.r$rep.restore-diff.log" 2>&1; then
        log "  $tool restore check: identical"
        printf '%s\t%s\trestore-check\tok\tok\t0\n' "$tool" "$rep" >>"$RAW"
    else
        note "$tool rep $rep restore check FAILED: restored tree differs (see $LOGDIR/$tool.r$rep.restore-diff.log)"
        printf '%s\t%s\trestore-check\tFAIL\tFAIL\t1\n' "$tool" "$rep" >>"$RAW"
    fi
}

run_tool() {
    local tool=$1 rep=$2
    local base=$RUNS/$tool
    rm -rf "$base"
    mkdir -p "$base/cache"
    REPO=$base/repo
    # Fresh, per-tool caches inside the work dir for every repetition.
    export HOLDFAST_CACHE_DIR=$base/cache/holdfast
    export RESTIC_CACHE_DIR=$base/cache/restic
    export RUSTIC_CACHE_DIR=$base/cache/rustic
    export BORG_BASE_DIR=$base/cache/borg-base
    export BORG_CACHE_DIR=$base/cache/borg
    export XDG_CACHE_HOME=$base/cache/xdg

    log "rep $rep/$REPS: $tool (resetting data)"
    reset_data
    sync

    tool_cmd "$tool" init
    if ! measure "$tool" "$rep" init "${CMD[@]}"; then
        note "$tool rep $rep: init failed, skipping remaining steps"
        return
    fi
    sed -i '/\tinit\t/d' "$RAW"   # init is not reported

    tool_cmd "$tool" backup1
    measure "$tool" "$rep" backup1 "${CMD[@]}" || true

    apply_gen2
    tool_cmd "$tool" backup2
    measure "$tool" "$rep" backup2 "${CMD[@]}" || true
    sync
    local size
    size=$(du -sb "$REPO" | cut -f1)
    printf '%s\t%s\tsize\t%s\tNA\t0\n' "$tool" "$rep" "$size" >>"$RAW"
    log "  $tool repo size after 2nd backup: $((size / 1024 / 1024)) MiB"

    tool_cmd "$tool" backup3
    measure "$tool" "$rep" backup3 "${CMD[@]}" || true

    local target=$base/restore
    rm -rf "$target"
    mkdir -p "$target"
    tool_cmd "$tool" restore "$target"
    if measure "$tool" "$rep" restore "${CMD[@]}" && [[ $RESTORE_CHECK == 1 ]]; then
        restore_check "$tool" "$rep" "$target"
    fi
    rm -rf "$target"

    tool_cmd "$tool" verify
    measure "$tool" "$rep" verify "${CMD[@]}" || true

    if [[ $KEEP != 1 ]]; then
        rm -rf "$base"
    fi
}

# ----------------------------------------------------------- machine facts --
tool_version() {
    local t=$1 b
    b=$(tool_bin "$t")
    [[ -x $b ]] || { echo "not found ($b)"; return; }
    case $t in
        holdfast) "$b" --version 2>/dev/null | head -n 1 || echo "unknown" ;;
        restic) "$b" version 2>/dev/null | head -n 1 ;;
        rustic) "$b" --version 2>/dev/null | head -n 1 ;;
        borg) "$b" --version 2>/dev/null | head -n 1 ;;
    esac
}

machine_facts() {
    local cpu mem fs
    cpu=$(awk -F: '/^model name/ { sub(/^[ \t]+/, "", $2); print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
    [[ -n $cpu ]] || cpu=$(lscpu 2>/dev/null | awk -F: '/Model name/ { sub(/^[ \t]+/, "", $2); print $2; exit }')
    mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1024 / 1024 }' /proc/meminfo)
    fs=$(df -PT "$WORK" | awk 'NR == 2 { print $2 " (" $1 ")" }')
    echo "## Machine"
    echo
    echo "- date: $(date -Is)"
    echo "- host: $(uname -srm)"
    echo "- nproc: $(nproc)"
    echo "- CPU: ${cpu:-unknown}"
    echo "- memory: $mem"
    echo "- work dir: $WORK on $fs"
    echo "- GNU time: $("$GNU_TIME" --version 2>&1 | head -n 1)"
    local t
    for t in holdfast restic rustic borg; do
        echo "- $t: $(tool_version "$t")"
    done
    if git -C "$REPO_ROOT" rev-parse --short HEAD >/dev/null 2>&1; then
        echo "- holdfast git: $(git -C "$REPO_ROOT" rev-parse --short HEAD)$(git -C "$REPO_ROOT" diff --quiet 2>/dev/null || echo ' (dirty)')"
    fi
    echo
}

# ----------------------------------------------------------------- report --
median() { # values on stdin, NA ignored
    awk '$1 != "NA" && $1 != "" { print $1 }' | sort -g | awk '
        { a[NR] = $1 }
        END {
            if (NR == 0) { print "NA"; exit }
            if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2
        }'
}

col() { # col TOOL OP FIELD(4=wall,5=rss)
    awk -F'\t' -v t="$1" -v o="$2" -v f="$3" '$1 == t && $3 == o { print $f }' "$RAW" | median
}

fmt() { # fmt VALUE DIVISOR DECIMALS
    if [[ $1 == NA ]]; then echo "n/a"; else awk -v v="$1" -v d="$2" -v p="$3" 'BEGIN { printf "%.*f", p, v / d }'; fi
}

ratio() {
    if [[ $1 == NA || $2 == NA ]] || awk -v b="$2" 'BEGIN { exit !(b == 0) }'; then
        echo "n/a"
    else
        awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
    fi
}

has_tool() { local t; for t in "${ACTIVE[@]}"; do [[ $t == "$1" ]] && return 0; done; return 1; }

report() {
    local t op header sep row
    header="| operation |"
    sep="|---|"
    for t in "${ACTIVE[@]}"; do
        header+=" $t s | $t MiB |"
        sep+="---:|---:|"
    done
    header+=" holdfast/restic time | holdfast/restic RSS |"
    sep+="---:|---:|"

    machine_facts
    echo "## Dataset"
    echo
    echo "- gen1: $(fmt "$GEN1_BYTES" 1048576 1) MiB in $GEN1_FILES files ($DS/gen1)"
    echo "  - python stdlib + site-packages copy (__pycache__ $([[ $PY_PYCACHE == 1 ]] && echo included || echo skipped))"
    if [[ $HAVE_PG == 1 ]]; then
        echo "  - pg_dump (plain SQL) of pgbench scale $PG_SCALE: $(fmt "$(stat -c %s "$DS/gen1/pg/bench.sql")" 1048576 1) MiB"
    fi
    echo "  - large.bin: $RANDOM_MIB MiB /dev/urandom + $TEXT_MIB MiB repetitive text"
    echo "- gen2 edits: +$APPEND_KIB KiB appended to large.bin, $(wc -l <"$DS/gen2/py-edits.txt") .py files got a comment line appended, $NEW_FILES new small files$(
        [[ $HAVE_PG == 1 ]] && echo ", $(cat "$DS/gen2/dump-edited-lines") rows of the dump rewritten in $DUMP_REGIONS regions of $DUMP_REGION_LINES lines")"
    echo "- repetitions: $REPS (medians reported)$([[ $SMOKE == 1 ]] && echo ' — SMOKE MODE, numbers are meaningless')"
    echo
    echo "## Results"
    echo
    echo "Wall time in seconds and peak RSS in MiB (GNU time \`%e\`/\`%M\`), median of $REPS."
    echo
    echo "$header"
    echo "$sep"
    local hw hr rw rr w r
    for op in "${OPS[@]}"; do
        row="| ${OP_LABEL[$op]} |"
        for t in "${ACTIVE[@]}"; do
            w=$(col "$t" "$op" 4)
            r=$(col "$t" "$op" 5)
            row+=" $(fmt "$w" 1 2) | $(fmt "$r" 1024 1) |"
        done
        hw=NA hr=NA rw=NA rr=NA
        if has_tool holdfast && has_tool restic; then
            hw=$(col holdfast "$op" 4); hr=$(col holdfast "$op" 5)
            rw=$(col restic "$op" 4); rr=$(col restic "$op" 5)
        fi
        row+=" $(ratio "$hw" "$rw") | $(ratio "$hr" "$rr") |"
        echo "$row"
    done
    row="| repo size after 2nd backup (MiB) |"
    for t in "${ACTIVE[@]}"; do
        row+=" $(fmt "$(col "$t" size 4)" 1048576 1) | |"
    done
    hw=NA rw=NA
    if has_tool holdfast && has_tool restic; then
        hw=$(col holdfast size 4); rw=$(col restic size 4)
    fi
    row+=" $(ratio "$hw" "$rw") | |"
    echo "$row"
    echo
    local checks
    checks=$(awk -F'\t' '$3 == "restore-check" { print $1 ": " $4 }' "$RAW" | sort | uniq -c | awk '{ $1 = $1 "x"; print }' | paste -sd ';' -)
    [[ -n $checks ]] && { echo "Restore checks (diff -r against the source tree): ${checks//;/; }"; echo; }
    echo "Settings: restic repo v2 \`--compression auto\`; rustic defaults (repo v2, zstd level 3);" \
         "borg \`repokey-blake2\` with \`--compression zstd,3\` (not borg's lz4 default);" \
         "holdfast defaults. All encrypted. Fresh repo and cache per tool and repetition;" \
         "page cache is not dropped (\`sync\` before every step only)."
    echo
    if ((${#NOTES[@]} > 0)); then
        echo "## Notes"
        echo
        local n
        for n in "${NOTES[@]}"; do echo "- $n"; done
        echo
    fi
    echo "Raw data: $RAW; per-step logs: $LOGDIR"
}

# -------------------------------------------------------------------- main --
log "tools: ${ACTIVE[*]}; reps: $REPS; work: $WORK; logs: $LOGDIR"
for ((rep = 1; rep <= REPS; rep++)); do
    # Rotate the tool order each repetition to spread ordering effects.
    n=${#ACTIVE[@]}
    for ((k = 0; k < n; k++)); do
        run_tool "${ACTIVE[$(((k + rep - 1) % n))]}" "$rep"
    done
done
if [[ $KEEP != 1 ]]; then
    rm -rf "$DATA" "$RUNS"
fi

report | tee "$RESULTS"
cp "$RESULTS" "$LOGDIR/results.md"
