#!/usr/bin/env bash
# bench/update_delete.sh -- safe_update / safe_delete against the one-shot
# UPDATE / DELETE (issue 24's four examples), with a concurrent client.
#
#   bash bench/update_delete.sh        # 4 cases, 1,000,000 rows, 3 runs: ~15 min on 2 cores
#   BENCH_CASES="currency purge" BENCH_RUNS=5 bash bench/update_delete.sh
#   BENCH_METHODS="oneshot safe safe_pause20" bash bench/update_delete.sh
#   PG_CONFIG=/path/to/copy/bin/pg_config BENCH_SRC=/path/to/checkout bash bench/update_delete.sh
#
# Starts its own throwaway PostgreSQL cluster (bench/lib.sh, stopped at exit)
# with the server's durability defaults (fsync, synchronous_commit,
# full_page_writes on) and autovacuum on, builds and installs BENCH_SRC.
# Every method runs on a freshly made table (copied from a source table made
# once, indexes built after the load, VACUUM ANALYZE, CHECKPOINT); runs are
# interleaved (oneshot safe ..., oneshot safe ..., per case) and each method
# is reported by its run with the median time; "vs one-shot" is the median
# over the runs of the method's time divided by the one-shot's time in the
# same run.
#
# Cases (BENCH_CASES, default all four; BENCH_ROWS rows each, default 1M):
#   currency  orders (id bigserial PRIMARY KEY, name, customer_id int
#             indexed, currency text, price numeric(10,2), price_cents int):
#             SET currency = 'EUR' WHERE currency = 'eur'   (30% of the rows,
#             spread over every page)
#   cents     the same orders: SET price_cents = (price * 100)::int
#             WHERE price_cents IS DISTINCT FROM (price * 100)::int
#             (price_cents is NULL in the oldest 60% of the rows, as after
#             an ADD COLUMN the application fills for new rows only)
#   json      customers (id bigserial PRIMARY KEY, name, payload jsonb,
#             email text): SET email = payload->>'email'
#             WHERE email IS NULL AND payload ? 'email'   (70% of the rows)
#   purge     events (id bigserial PRIMARY KEY, name, created_at timestamptz
#             indexed, kind text, payload jsonb of about 150 bytes):
#             DELETE WHERE created_at < now() - interval '90 days'  (the
#             oldest 40% of the rows, created 91 to 150 days ago; the others
#             0 to 89 days ago, so that no row crosses the boundary while the
#             benchmark runs)
#
# Methods (BENCH_METHODS, default "oneshot safe safe_2workers"):
#   oneshot          the statement: UPDATE t SET <set> WHERE <where> /
#                    DELETE FROM t WHERE <where>
#   safe             CALL safe_update('t', set => ..., "where" => ..., batch_size
#                    => BENCH_BATCH) / CALL safe_delete('t', ..., batch_size => ...)
#   safe_2workers    the same with workers => 2 (skipped, and said so, when
#                    this build refuses workers for safe_update)
#   safe_pause<N>, safe_batch<N>, safe_target<N>: the same with pause_ms,
#                    batch_size or target_batch_ms N
# Without safe_update / safe_delete in the build (before issue 24's engine)
# only the one-shot runs, and the report says so.
#
# Measured per run (as bench/run measures a fill):
#   - time: wall clock of the statement or CALL, from psql
#   - the concurrent client (bench/lib.sh's client_start, as in bench/run's
#     seed case): two pgbench connections at BENCH_CLIENT_RATE statements/s
#     together, 'SELECT id, name, <column> FROM t ORDER BY id LIMIT 20' and a
#     point UPDATE of a random row's name: worst and p99 statement time
#     (server time: pgbench -l time minus schedule lag) over the statements
#     that started during the run, and the throughput kept: statements
#     completed per second during the run / in the 2 s before it
#   - WAL written, table / index / primary key size before and after
#   - HOT share of the updates (n_tup_hot_upd / n_tup_upd, includes the
#     client's point updates), rows deleted (n_tup_del)
#   - rows changed (the command tag; safe_update / safe_delete's summary
#     NOTICE) against the rows that matched before the run, and rows still
#     matching after it (must be 0; exit status 1 otherwise)
#   - the load average (1 min) at the end of the run
# The picture (gnuplot, as bench/run draws it): per case, for each method's
# median run, the client's worst and p99 latency over time, its statements
# per second, and the share of the matching rows done as another session
# sees it (a fixed block sample of about 200 pages polled every 0.25 s,
# committed rows only).
#
# Environment: BENCH_CASES, BENCH_METHODS, BENCH_ROWS (1000000), BENCH_RUNS
# (3), BENCH_BATCH (10000), BENCH_CLIENT_RATE (200), BENCH_PGOPTIONS (settings
# for the safe methods, e.g. "-c safe_backfill.hot_rounds=1"), BENCH_NOTE (a
# line at the top of the report), BENCH_SUFFIX (appended to the file name,
# default -update-delete), BENCH_RESULTS (bench/results), BENCH_SRC (this
# repository), PG_CONFIG, KEEP_WORK=1 (keep the work directory).
# Output: bench/results/<date>-<host>-update-delete.md and .svg (not copied
# to latest.md: that is bench/run's).
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"

ALL_CASES="currency cents json purge"
CASES=${BENCH_CASES:-$ALL_CASES}
[ "$CASES" = all ] && CASES=$ALL_CASES
METHODS=${BENCH_METHODS:-oneshot safe safe_2workers}
ROWS=${BENCH_ROWS:-1000000}
RUNS=${BENCH_RUNS:-3}
BATCH=${BENCH_BATCH:-10000}
RATE=${BENCH_CLIENT_RATE:-200}
RESULTS=${BENCH_RESULTS:-$ROOT/bench/results}
SRC=${BENCH_SRC:-$ROOT}
SAFE_OPTIONS=${BENCH_PGOPTIONS:-}
BASELINE=2              # seconds of client load measured before each run
case "$ROWS$RUNS$BATCH$RATE" in *[!0-9]*) die "BENCH_ROWS, BENCH_RUNS, BENCH_BATCH and BENCH_CLIENT_RATE must be integers" ;; esac
[ "$RUNS" -ge 1 ] || die "BENCH_RUNS must be at least 1"
[ "$ROWS" -ge 1000 ] || die "BENCH_ROWS must be at least 1000"
is_knob_method() { [[ $1 =~ ^safe_(pause|batch|target)[0-9]+$ ]]; }
for m in $METHODS; do
    case $m in oneshot|safe|safe_2workers) ;; *) is_knob_method "$m" || die "unknown method $m (oneshot safe safe_2workers safe_pause<ms> safe_batch<rows> safe_target<ms>)" ;; esac
done
for c in $CASES; do
    case " $ALL_CASES " in *" $c "*) ;; *) die "unknown case $c ($ALL_CASES, or all)" ;; esac
done
[ -f "$SRC/safe_backfill.control" ] || die "BENCH_SRC=$SRC is not a safe_backfill source tree"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
WORK=$(mktemp -d /tmp/safe_backfill_udbench.XXXXXX)
trap 'cleanup_all; [ -n "${KEEP_WORK:-}" ] && echo "work directory kept: $WORK" >&2 || rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
RUNS_TSV=$WORK/runs.tsv
: >"$RUNS_TSV"

if [ "$(id -u)" = 0 ]; then install_missing_packages gnuplot-nox; else install_missing_packages; fi
mkdir -p "$WORK/src"
cp -a "$SRC/." "$WORK/src/"
make -C "$WORK/src" -s PG_CONFIG="$PG_CONFIG" clean >/dev/null 2>&1
build_and_install "$WORK/src" "$WORK/build.log"
log "built and installed safe_backfill from $SRC"

# The server's durability defaults, as in bench/run (test/cluster.sh turns
# them off for the tests' speed); autovacuum stays on, as in production.
start_cluster "$WORK" "fsync = on" "synchronous_commit = on" "full_page_writes = on"
sqlv "CREATE DATABASE bench" >/dev/null
DB=bench
PG_VERSION=$(sqlv "SHOW server_version")

# ---------------------------------------------------------------------------
# Source tables, made once; every run copies one into a fresh table.
# ---------------------------------------------------------------------------
log "making the source tables ($ROWS rows each) ..."
sql <<SQL
SET client_min_messages = warning;
CREATE EXTENSION safe_backfill;
-- 30% 'eur' (spread: g % 10 < 3), the rest 'EUR', 'USD', 'GBP';
-- price_cents NULL in the oldest 60%, right in the others.
CREATE TABLE src_orders AS
SELECT g::bigint AS id, ('Order ' || g)::varchar(100) AS name,
       (1 + (g * 7919) % 50000)::int AS customer_id,
       CASE WHEN g % 10 < 3 THEN 'eur' WHEN g % 10 < 6 THEN 'EUR' WHEN g % 10 < 9 THEN 'USD' ELSE 'GBP' END AS currency,
       ((1 + (g * 31) % 100000) / 100.0)::numeric(10,2) AS price,
       CASE WHEN g > $ROWS * 0.6 THEN (1 + (g * 31) % 100000)::int END AS price_cents
  FROM generate_series(1::bigint, $ROWS) g;
-- 70% of the payloads carry an email.
CREATE TABLE src_customers AS
SELECT g::bigint AS id, ('Customer ' || g)::varchar(100) AS name,
       CASE WHEN g % 10 < 7
            THEN jsonb_build_object('email', 'customer' || g || '@example.com', 'plan', 'free', 'newsletter', g % 2 = 0)
            ELSE jsonb_build_object('plan', 'pro', 'newsletter', false) END AS payload,
       NULL::text AS email
  FROM generate_series(1::bigint, $ROWS) g;
-- The oldest 40% created 150 to 91 days ago, the rest 89 days ago to now.
CREATE TABLE src_events AS
SELECT g::bigint AS id, ('Event ' || g)::varchar(100) AS name,
       CASE WHEN g <= $ROWS * 0.4
            THEN now() - interval '150 days' + (g / ($ROWS * 0.4)) * interval '59 days'
            ELSE now() - interval '89 days' + ((g - $ROWS * 0.4) / ($ROWS * 0.6)) * interval '89 days' END AS created_at,
       (ARRAY['click', 'view', 'signup', 'purchase'])[(1 + g % 4)::int] AS kind,
       jsonb_build_object('user_id', g % 50000, 'path', '/products/' || g % 1000, 'ms', g % 997,
                          'agent', 'Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0') AS payload
  FROM generate_series(1::bigint, $ROWS) g;
SQL
[ $? = 0 ] || die "making the source tables failed"

HAVE_UPDATE=$(sqlv "SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'safe_update')")
HAVE_DELETE=$(sqlv "SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'safe_delete')")
# workers => 2: accepted, or refused with feature_not_supported (update-api).
HAVE_WORKERS=f
if [ "$HAVE_UPDATE" = t ]; then
    if sql -c "SET client_min_messages = warning" \
           -c "CREATE TABLE ud_probe (id int PRIMARY KEY, v int)" \
           -c "INSERT INTO ud_probe VALUES (1, 0), (2, 0)" \
           -c "CALL safe_update('ud_probe', 'v = 1', workers => 2)" \
           -c "DROP TABLE ud_probe" >"$WORK/probe.out" 2>&1; then
        HAVE_WORKERS=t
    else
        log "safe_update(..., workers => 2) is refused in this build: $(grep ERROR "$WORK/probe.out" | head -1)"
        sql -c "DROP TABLE IF EXISTS ud_probe" >/dev/null 2>&1
    fi
fi
FAILED=0
SKIPPED=""

# ---------------------------------------------------------------------------
# The cases.
# ---------------------------------------------------------------------------
case_table() {
    case $1 in currency|cents) echo orders ;; json) echo customers ;; purge) echo events ;; esac
}
# The column the client's reader selects (the one being changed).
case_column() {
    case $1 in currency) echo currency ;; cents) echo price_cents ;; json) echo email ;; purge) echo created_at ;; esac
}
case_is_delete() { [ "$1" = purge ]; }
case_set() {
    case $1 in
        currency) echo "currency = 'EUR'" ;;
        cents) echo "price_cents = (price * 100)::int" ;;
        json) echo "email = payload->>'email'" ;;
    esac
}
case_where() {
    case $1 in
        currency) echo "currency = 'eur'" ;;
        cents) echo "price_cents IS DISTINCT FROM (price * 100)::int" ;;
        json) echo "email IS NULL AND payload ? 'email'" ;;
        purge) echo "created_at < now() - interval '90 days'" ;;
    esac
}
case_title() {
    case $1 in
        currency) echo "(a) currency: orders, SET currency = 'EUR' WHERE currency = 'eur'" ;;
        cents) echo "(b) cents: orders, SET price_cents = (price * 100)::int WHERE ... IS DISTINCT FROM" ;;
        json) echo "(c) json: customers, SET email = payload->>'email'" ;;
        purge) echo "(d) purge: DELETE FROM events older than 90 days" ;;
    esac
}

prepare_table() {
    local c=$1
    case $c in
        currency|cents) sql <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS orders;
CREATE TABLE orders (id bigserial PRIMARY KEY, name varchar(100) NOT NULL, customer_id int NOT NULL,
                     currency text NOT NULL, price numeric(10,2) NOT NULL, price_cents int);
INSERT INTO orders SELECT * FROM src_orders ORDER BY id;
CREATE INDEX orders_customer_id ON orders (customer_id);
VACUUM ANALYZE orders;
CHECKPOINT;
SQL
        ;;
        json) sql <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS customers;
CREATE TABLE customers (id bigserial PRIMARY KEY, name varchar(100) NOT NULL, payload jsonb NOT NULL, email text);
INSERT INTO customers SELECT * FROM src_customers ORDER BY id;
VACUUM ANALYZE customers;
CHECKPOINT;
SQL
        ;;
        purge) sql <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS events;
CREATE TABLE events (id bigserial PRIMARY KEY, name varchar(100) NOT NULL, created_at timestamptz NOT NULL, kind text NOT NULL,
                     payload jsonb NOT NULL);
INSERT INTO events SELECT * FROM src_events ORDER BY id;
CREATE INDEX events_created_at ON events (created_at);
VACUUM ANALYZE events;
CHECKPOINT;
SQL
        ;;
    esac
    [ $? = 0 ] || die "preparing the table of case $c failed"
}

# ---------------------------------------------------------------------------
# The methods.
# ---------------------------------------------------------------------------
# A string as a dollar-quoted SQL literal.
dq() { printf '$q$%s$q$' "$1"; }

method_sql() {
    local c=$1 m=$2 t set where args batch=$BATCH
    t=$(case_table "$c"); set=$(case_set "$c"); where=$(case_where "$c")
    case $m in safe_batch*) batch=${m#safe_batch} ;; esac
    if [ "$m" = oneshot ]; then
        if case_is_delete "$c"; then echo "DELETE FROM $t WHERE $where"; else echo "UPDATE $t SET $set WHERE $where"; fi
        return
    fi
    if case_is_delete "$c"; then
        args="'$t', $(dq "$where"), batch_size => $batch"
    else
        args="'$t', set => $(dq "$set"), \"where\" => $(dq "$where"), batch_size => $batch"
    fi
    case $m in
        safe_2workers) args="$args, workers => 2" ;;
        safe_pause*) args="$args, pause_ms => ${m#safe_pause}" ;;
        safe_target*) args="$args, target_batch_ms => ${m#safe_target}" ;;
    esac
    if case_is_delete "$c"; then echo "CALL safe_delete($args)"; else echo "CALL safe_update($args)"; fi
}

# Why a method cannot run in this build ("" when it can).
method_missing() {
    local c=$1 m=$2
    [ "$m" = oneshot ] && return 0
    if case_is_delete "$c"; then
        [ "$HAVE_DELETE" = t ] || { echo "safe_delete does not exist in this build"; return 0; }
    else
        [ "$HAVE_UPDATE" = t ] || { echo "safe_update does not exist in this build"; return 0; }
    fi
    [ "$m" = safe_2workers ] && [ "$HAVE_WORKERS" != t ] && echo "this build refuses workers => 2 for safe_update"
    return 0
}

method_label() {
    case $1 in
        oneshot) echo "one-shot statement" ;;
        safe) echo "safe_update / safe_delete" ;;
        safe_2workers) echo "the same, workers => 2" ;;
        safe_pause*) echo "the same, pause_ms => ${1#safe_pause}" ;;
        safe_batch*) echo "the same, batch_size => ${1#safe_batch}" ;;
        safe_target*) echo "the same, target_batch_ms => ${1#safe_target}" ;;
    esac
}
method_colour() {
    case $1 in
        oneshot) echo "#d62728" ;;
        safe) echo "#2ca02c" ;;
        safe_2workers) echo "#1f77b4" ;;
        *)  local palette=("#9467bd" "#ff7f0e" "#8c564b" "#e377c2" "#17becf") k n=0
            for k in $METHODS; do
                is_knob_method "$k" || continue
                [ "$k" = "$1" ] && break
                n=$((n + 1))
            done
            echo "${palette[$((n % 5))]}" ;;
    esac
}

# ---------------------------------------------------------------------------
# Measuring.
# ---------------------------------------------------------------------------
# Prints "lsn table_bytes index_bytes pkey_bytes n_tup_upd n_tup_hot_upd n_tup_del".
table_snapshot() {
    sqlv "SELECT pg_current_wal_lsn(), pg_table_size(c.oid), pg_indexes_size(c.oid),
                 coalesce((SELECT sum(pg_relation_size(conindid)) FROM pg_constraint
                            WHERE conrelid = c.oid AND contype = 'p'), 0),
                 coalesce(s.n_tup_upd, 0), coalesce(s.n_tup_hot_upd, 0), coalesce(s.n_tup_del, 0)
            FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
           WHERE c.oid = '$1'::regclass" | tr '|' ' '
}

# Statistics reach pg_stat_user_tables when a backend flushes them: poll, in
# fresh sessions, until the run's updates (deletes) are counted, or 10 s.
# Prints "n_tup_upd n_tup_hot_upd n_tup_del".
wait_stats() {
    local t=$1 field=$2 before=$3 expected=$4 i r v
    for i in $(seq 1 100); do
        r=$(sqlv "SELECT coalesce(n_tup_upd, 0), coalesce(n_tup_hot_upd, 0), coalesce(n_tup_del, 0)
                    FROM pg_stat_user_tables WHERE relid = '$t'::regclass" | tr '|' ' ')
        v=$(echo "$r" | cut -d' ' -f"$field")
        [ $(( v - before )) -ge "$expected" ] && break
        sleep 0.1
    done
    echo "$r"
}

# The progress as another session sees it: every PROGRESS_EVERY seconds
# (psql's \watch, a short transaction each), how many rows of a fixed block
# sample of about 200 pages still match the case's predicate (committed
# rows only: a one-shot statement shows nothing until it commits).  One
# line per poll in OUT: "epoch_us matching sampled".  Stopped with lib.sh's
# progress_stop.
ud_progress_start() {
    progress_start "$1" "" "$3" "count(*) FILTER (WHERE $2)"
}

# client_kept DIR B0 T0 T1: the client's statements completed per second in
# [T0, T1) divided by those in the baseline [B0, T0) (pgbench -l's epoch is
# a statement's end).
client_kept() {
    cat "$1"/select.log.* "$1"/update.log.* 2>/dev/null |
    awk -v b0="$2" -v t0="$3" -v t1="$4" '
        NF >= 7 { end = $5 * 1000000 + $6
                  if (end >= b0 && end < t0) nb++
                  if (end >= t0 && end < t1) nf++ }
        END { if (nb == 0 || t1 <= t0) { print "-"; exit }
              printf "%.2f\n", (nf / ((t1 - t0) / 1e6)) / (nb / ((t0 - b0) / 1e6)) }'
}

# run_one CASE METHOD RUN: one measured run on a fresh table.
run_one() {
    local c=$1 m=$2 run=$3 t col where stmt expected b0 t0 t1 rc secs series
    local lsn0 tb0 ib0 pk0 upd0 hot0 del0 lsn1 tb1 ib1 pk1 upd1 hot1 del1 wal st kept changed remaining field
    t=$(case_table "$c"); col=$(case_column "$c"); where=$(case_where "$c")
    stmt=$(method_sql "$c" "$m")
    log ""
    log "== run $run: $c: $m: $stmt"
    prepare_table "$c"
    expected=$(sqlv "SELECT count(*) FROM $t WHERE $where")
    client_start "$WORK/client" "$t" "$ROWS" "$RATE" "$col"
    series=$WORK/series/$c.$m.$run
    mkdir -p "$series"
    ud_progress_start "$t" "$where" "$series/progress.out"
    b0=$(now_us)
    sleep "$BASELINE"
    read -r lsn0 tb0 ib0 pk0 upd0 hot0 del0 <<<"$(table_snapshot "$t")"
    t0=$(now_us)
    # Not sql(): without -q psql prints the command tag (UPDATE n).
    PGOPTIONS="$([ "$m" = oneshot ] || echo "$SAFE_OPTIONS")" \
        "$PG_BIN/psql" -X -h "$CL" -p "$PORT" -U postgres -d "$DB" -v ON_ERROR_STOP=1 -c "$stmt" >"$WORK/run.out" 2>&1
    rc=$?
    t1=$(now_us)
    sleep 1
    progress_stop
    client_stop
    ud_client_save "$WORK/client" "$series"
    echo "$t0 $t1" >"$series/fill.times"
    [ "$rc" = 0 ] || { cat "$WORK/run.out" >&2; die "$c $m failed"; }
    grep -E 'NOTICE|DETAIL|WARNING' "$WORK/run.out" | tail -4 | sed 's/^/   /' >&2
    if [ "$m" = oneshot ]; then
        changed=$(sed -nE 's/^(UPDATE|DELETE) ([0-9]+)$/\2/p' "$WORK/run.out" | tail -1)
    else
        changed=$(sed -nE 's/.*(updated|deleted) ([0-9]+) rows.*/\2/p' "$WORK/run.out" | tail -1)
    fi
    [ -n "$changed" ] || changed=-
    read -r lsn1 tb1 ib1 pk1 <<<"$(table_snapshot "$t")"
    if case_is_delete "$c"; then field=3; else field=1; fi
    read -r upd1 hot1 del1 <<<"$(wait_stats "$t" "$field" "$([ $field = 3 ] && echo "$del0" || echo "$upd0")" "$expected")"
    wal=$(sqlv "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')")
    remaining=$(sqlv "SELECT count(*) FROM $t WHERE $where")
    [ "$remaining" = 0 ] || { log "   ERROR: $remaining rows still match"; FAILED=1; }
    [ "$changed" = "$expected" ] || { log "   ERROR: $changed rows changed, $expected matched"; FAILED=1; }
    # sel_n sel_max sel_p99 upd_n upd_max upd_p99 all_n all_max all_p99
    st=($(client_stats "$WORK/client" "$t0" "$t1"))
    kept=$(client_kept "$series" "$b0" "$t0" "$t1")
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e6 }')
    # 1 case 2 method 3 run 4 secs 5 max 6 p99 7 sel_max 8 upd_max 9 client_n
    # 10 kept 11 wal 12 tb0 13 tb1 14 ib0 15 ib1 16 pk0 17 pk1 18 upd 19 hot
    # 20 del 21 expected 22 changed 23 remaining 24 load
    printf '%s\t' "$c" "$m" "$run" "$secs" "${st[7]}" "${st[8]}" "${st[1]}" "${st[4]}" "${st[6]}" \
        "$kept" "$wal" "$tb0" "$tb1" "$ib0" "$ib1" "$pk0" "$pk1" "$((upd1 - upd0))" "$((hot1 - hot0))" \
        "$((del1 - del0))" "$expected" "$changed" "$remaining" >>"$RUNS_TSV"
    cut -d' ' -f1 /proc/loadavg >>"$RUNS_TSV"
    log "   $secs s, $changed of $expected rows, $remaining still match, client max ${st[7]} ms, p99 ${st[8]} ms, kept $kept, load $(cut -d' ' -f1 /proc/loadavg)"
}

# ud_client_save: lib.sh's client_save, but keeping the logs' names (*.log.*),
# which client_kept and series_latency read from the run's copy.
ud_client_save() {
    mkdir -p "$2"
    cat "$1"/select.log.* >"$2/select.log.0" 2>/dev/null
    cat "$1"/update.log.* >"$2/update.log.0" 2>/dev/null
    return 0
}

# Interleaved: per case, oneshot safe ..., oneshot safe ..., so that a slow
# spell of the machine does not land on one method only.
for c in $CASES; do
    methods=""
    for m in $METHODS; do
        why=$(method_missing "$c" "$m")
        if [ -n "$why" ]; then
            log "== $c: $m skipped: $why"
            SKIPPED="$SKIPPED
- $c, \`$m\`: $why"
            continue
        fi
        methods="$methods $m"
    done
    for r in $(seq 1 "$RUNS"); do
        for m in $methods; do run_one "$c" "$m" "$r"; done
    done
done

# Per (case, method): the run with the median time, then the median over the
# runs of time / the one-shot's time in the same run, the median throughput
# kept, and every run's time and load.
awk -F'\t' '
    { key = $1 SUBSEP $2
      if (!(key in cnt)) order[++nkeys] = key
      cnt[key]++; line[key, cnt[key]] = $0; tm[key, cnt[key]] = $4 + 0
      kept[key, cnt[key]] = $10; ld[key, cnt[key]] = $24; run[key, cnt[key]] = $3
      if ($2 == "oneshot") one[$1, $3] = $4 + 0 }
    function median(a, n,    i, j, x) {
        for (i = 2; i <= n; i++)
            for (j = i; j > 1 && a[j] < a[j - 1]; j--) { x = a[j]; a[j] = a[j - 1]; a[j - 1] = x }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    END {
        for (k = 1; k <= nkeys; k++) {
            key = order[k]; n = cnt[key]; split(key, kp, SUBSEP)
            for (i = 1; i <= n; i++) idx[i] = i
            for (i = 2; i <= n; i++)
                for (j = i; j > 1 && tm[key, idx[j]] < tm[key, idx[j - 1]]; j--) { x = idx[j]; idx[j] = idx[j - 1]; idx[j - 1] = x }
            all = ""; loads = ""; nr = 0; nk = 0; delete ratios; delete ks
            for (i = 1; i <= n; i++) {
                all = all (i > 1 ? " / " : "") tm[key, i]
                loads = loads (i > 1 ? " / " : "") ld[key, i]
                o = one[kp[1], run[key, i]]
                if (o > 0) ratios[++nr] = tm[key, i] / o
                if (kept[key, i] != "-") ks[++nk] = kept[key, i] + 0
            }
            print line[key, idx[int((n + 1) / 2)]] "\t" (nr ? sprintf("%.2f", median(ratios, nr)) : "-") "\t" \
                  (nk ? sprintf("%.2f", median(ks, nk)) : "-") "\t" all "\t" loads
        }
    }' "$RUNS_TSV" >"$WORK/median.tsv"
# median.tsv: the 24 fields of the median run, then 25 ratio 26 kept (median)
# 27 every run's time 28 every run's load

# ---------------------------------------------------------------------------
# The picture, as bench/run draws it: per case a column of three panels
# sharing the time axis (seconds since the statement or CALL started, a
# second before and after it): the client's worst and p99 latency in flight
# per PICTURE_BUCKET seconds, its statements completed per second, and the
# share of the matching rows done (committed) as another session sees it.
# ---------------------------------------------------------------------------
PICTURE_BUCKET=0.25

# series_latency DIR OUT: per bucket from a second before the run to a
# second after it: "t_s worst_ms p99_ms per_s" (bench/run's function: a
# statement counts in every bucket it was in flight in; per_s counts the
# statements that ended in the second around the bucket).
series_latency() {
    local dir=$1 out=$2 t0 t1
    read -r t0 t1 <"$dir/fill.times"
    cat "$dir"/select.log.* "$dir"/update.log.* 2>/dev/null |
    awk 'NF >= 7 { printf "%.0f %.0f\n", $5 * 1000000 + $6, $3 - $7 }' |
    awk -v t0="$t0" -v t1="$t1" -v w="$PICTURE_BUCKET" '
        { end = ($1 - t0) / 1e6; lat = ($2 < 0 ? 0 : $2); start = end - lat / 1e6
          if (end < -1 || start > last) next
          b0 = int((start + 1) / w); if (start + 1 < 0) b0 = 0
          b1 = int((end + 1) / w)
          if (b1 > nb) b1 = nb
          for (b = b0; b <= b1; b++) {
              n[b]++; v[b, n[b]] = lat
              if (lat > worst[b]) worst[b] = lat
          }
          if (end >= -1 && end <= last) done[int((end + 1) / w)]++
        }
        BEGIN { last = (t1 - t0) / 1e6 + 1; nb = int((last + 1) / w) - 1 }
        END {
            span = int(1 / w + 0.5)
            for (b = 0; b <= nb; b++) {
                lo = b - int(span / 2); hi = lo + span - 1
                if (lo < 0) { lo = 0; hi = span - 1 }
                if (hi > nb) { hi = nb; lo = (nb - span + 1 > 0 ? nb - span + 1 : 0) }
                cnt = 0; for (k = lo; k <= hi; k++) cnt += done[k]
                rate = cnt / ((hi - lo + 1) * w)
                if (!n[b]) { printf "%.3f NaN NaN %.1f\n", b * w - 1 + w / 2, rate; continue }
                m = n[b]
                for (i = 1; i <= m; i++) a[i] = v[b, i]
                for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j] < a[j - 1]; j--) { x = a[j]; a[j] = a[j - 1]; a[j - 1] = x }
                r = int(m * 0.99); if (r < m * 0.99) r++; if (r < 1) r = 1
                printf "%.3f %.3f %.3f %.1f\n", b * w - 1 + w / 2, worst[b] / 1000, a[r] / 1000, rate
            }
        }' >"$out"
}

# series_progress DIR OUT: "t_s percent_done", percent of the rows that
# matched at the first poll that no longer match.
series_progress() {
    local dir=$1 out=$2 t0 t1
    read -r t0 t1 <"$dir/fill.times"
    awk -v t0="$t0" 'NF == 3 && $1 ~ /^[0-9]+$/ {
            if (m0 == "") m0 = $2
            if (m0 > 0) printf "%.3f %.2f\n", ($1 - t0) / 1e6, 100 * (1 - $2 / m0) }' \
        "$dir/progress.out" >"$out"
}

draw_picture() {
    local svg=$1 title=$2 dir=$WORK/picture c m run secs plot col ncol=0 nkey=0 i cols=""
    command -v gnuplot >/dev/null || { log "gnuplot is not installed (apt-get install gnuplot-nox): no picture"; return 1; }
    rm -rf "$dir"; mkdir -p "$dir"
    local gp=$dir/plot.gp
    for c in $CASES; do
        : >"$dir/$c.methods"
        while IFS=$'\t' read -r m run secs; do
            [ -s "$WORK/series/$c.$m.$run/fill.times" ] || continue
            series_latency "$WORK/series/$c.$m.$run" "$dir/$c.$m.lat"
            series_progress "$WORK/series/$c.$m.$run" "$dir/$c.$m.prog"
            echo "$m $secs" >>"$dir/$c.methods"
        done < <(awk -F'\t' -v c="$c" '$1 == c { print $2 "\t" $3 "\t" $4 }' "$WORK/median.tsv")
        [ -s "$dir/$c.methods" ] || continue
        cols="$cols $c"; ncol=$((ncol + 1))
        i=$(wc -l <"$dir/$c.methods"); [ "$i" -gt "$nkey" ] && nkey=$i
    done
    [ "$ncol" -gt 0 ] || { log "nothing ran: no picture"; return 1; }
    local W=$((40 + 500 * ncol)) key_h=$((14 * (nkey + 1) + 8))
    [ "$W" -lt 1040 ] && W=1040
    local p1=$((70 + key_h)) H
    H=$((p1 + 270 + 14 + 170 + 14 + 190 + 120))
    y() { awk -v px="$1" -v H="$H" 'BEGIN { printf "%.4f", 1 - px / H }'; }
    {
        echo "set terminal svg size $W,$H noenhanced font 'sans,11' background rgb 'white'"
        echo "set output '$svg'"
        echo "set datafile missing 'NaN'"
        echo "set multiplot"
        echo "set label 100 at screen 0.5, screen $(y 22) center \"$title\" font 'sans,14'"
        echo "set grid lc rgb '#dddddd'"
        echo "set border lc rgb '#555555'"
        i=0
        for c in $cols; do
            local x0 x1 xmax ymax
            x0=$(awk -v i="$i" -v W="$W" 'BEGIN { printf "%.4f", (85 + i * 500) / W }')
            x1=$(awk -v i="$i" -v W="$W" 'BEGIN { printf "%.4f", (85 + i * 500 + 420) / W }')
            xmax=$(awk '{ if ($2 > x) x = $2 } END { printf "%.2f", x + 1 }' "$dir/$c.methods")
            ymax=$(cat "$dir/$c".*.lat | awk '$2 != "NaN" && $2 > y { y = $2 } END { print (y > 0 ? y * 3 : 100) }')
            echo "unset arrow; unset logscale; unset title; unset xlabel; unset ylabel"
            echo "set label $((i + 1)) at screen $x0, screen $(y 52) left \"$(case_title "$c")\" font 'sans,11'"
            echo "set xrange [-1:$xmax]"
            echo "set lmargin at screen $x0; set rmargin at screen $x1"
            echo "set arrow from 0, graph 0 to 0, graph 1 nohead lc rgb '#333333' lw 1"
            while read -r m secs; do
                echo "set arrow from $secs, graph 0 to $secs, graph 1 nohead dt 2 lw 1.5 lc rgb '$(method_colour "$m")'"
            done <"$dir/$c.methods"
            echo "set tmargin at screen $(y "$p1"); set bmargin at screen $(y $((p1 + 270)))"
            echo "set key at screen $x0, screen $(y 62) left top Left reverse samplen 2 spacing 0.9 font 'sans,10' nobox"
            echo "set logscale y; set yrange [0.5:$ymax]; set format y '%g'"
            echo "set ylabel 'client statement latency (ms)'"
            echo "set format x ''"
            plot="plot 50 with lines dt 3 lw 1 lc rgb '#888888' title '50 ms'"
            while read -r m secs; do
                plot="$plot, '$dir/$c.$m.lat' using 1:2 with lines lw 2 lc rgb '$(method_colour "$m")' title '$(method_label "$m"): $secs s'"
                plot="$plot, '$dir/$c.$m.lat' using 1:3 with lines lw 1 dt 2 lc rgb '$(method_colour "$m")' notitle"
            done <"$dir/$c.methods"
            echo "$plot"
            echo "unset key; unset logscale; set yrange [0:*]; set format y '%g'"
            echo "set tmargin at screen $(y $((p1 + 284))); set bmargin at screen $(y $((p1 + 454)))"
            echo "set ylabel 'client statements/s'"
            plot="plot"
            while read -r m secs; do
                plot="$plot '$dir/$c.$m.lat' using 1:4 with lines lw 1.5 lc rgb '$(method_colour "$m")' notitle,"
            done <"$dir/$c.methods"
            echo "${plot%,}"
            echo "set tmargin at screen $(y $((p1 + 468))); set bmargin at screen $(y $((p1 + 658)))"
            echo "set yrange [0:105]; set ylabel '% of matching rows done (committed)'"
            echo "set format x '%g'; set xlabel 'seconds since the statement / CALL started'"
            plot="plot"
            while read -r m secs; do
                plot="$plot '$dir/$c.$m.prog' using 1:2 with steps lw 2 lc rgb '$(method_colour "$m")' notitle,"
            done <"$dir/$c.methods"
            echo "${plot%,}"
            i=$((i + 1))
        done
        echo "unset arrow"
        echo "set label 201 at screen 0.01, screen $(y $((H - 62))) \"Top: worst (solid) and 99th-percentile (dashed) latency of the client's statements in flight in each ${PICTURE_BUCKET} s (log scale; dotted: 50 ms); the key gives each run's time.\" font 'sans,10'"
        echo "set label 202 at screen 0.01, screen $(y $((H - 44))) \"Client: two pgbench connections at $((RATE / 2)) statements/s each (SELECT ... ORDER BY id LIMIT 20 and a point UPDATE of a random row's name).\" font 'sans,10'"
        echo "set label 203 at screen 0.01, screen $(y $((H - 26))) \"Middle: statements completed per second.  Bottom: % of the matching rows done as another session sees them (block sample every ${PROGRESS_EVERY} s).\" font 'sans,10'"
        echo "set label 204 at screen 0.01, screen $(y $((H - 8))) \"Vertical lines: start (black) and end (dashed) of each run.  Each method's run with the median time of $RUNS; $ROWS rows per table.\" font 'sans,10'"
        echo "set xrange [0:1]; set yrange [0:1]; unset border; unset tics; unset xlabel; unset ylabel; unset grid; unset key"
        echo "set lmargin at screen 0; set rmargin at screen 1; set tmargin at screen 1; set bmargin at screen 0"
        echo "plot NaN notitle"
        echo "unset multiplot"
    } >"$gp"
    gnuplot "$gp" 2>"$dir/gnuplot.err" || { cat "$dir/gnuplot.err" >&2; log "gnuplot failed: no picture"; rm -f "$svg"; return 1; }
    return 0
}

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
mkdir -p "$RESULTS"
HOST=$(uname -n)
STAMP=$(date +%Y-%m-%d-%H%M)
NAME=$STAMP-$HOST${BENCH_SUFFIX:--update-delete}
MD=$RESULTS/$NAME.md
SVG=$RESULTS/$NAME.svg
COMMIT=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
BRANCH=$(git -C "$SRC" rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
[ -n "$(git -C "$SRC" status --porcelain -- . 2>/dev/null)" ] && COMMIT="$COMMIT (with uncommitted changes)"
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
draw_picture "$SVG" "What a concurrent client feels during a batched UPDATE / DELETE: $HOST, $(nproc) cores, PostgreSQL ${PG_VERSION%% *}, $(date '+%Y-%m-%d %H:%M %Z')" || SVG=""
SETTINGS=$(sqlv "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings
                  WHERE name IN ('shared_buffers', 'fsync', 'synchronous_commit', 'full_page_writes',
                                 'max_wal_size', 'autovacuum', 'work_mem')")
{
    echo "# safe_update / safe_delete benchmark, $(date '+%Y-%m-%d %H:%M %Z')"
    echo
    [ -n "${BENCH_NOTE:-}" ] && { echo "$BENCH_NOTE"; echo; }
    echo "- \`bench/update_delete.sh\`; machine: \`$HOST\`, $(nproc) cores ($CPU), $MEM memory, load average at the start: $LOAD_START, at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- PostgreSQL $PG_VERSION, throwaway cluster: $SETTINGS"
    echo "- safe_backfill: branch \`$BRANCH\`, commit $COMMIT; batch size $BATCH${SAFE_OPTIONS:+; safe methods with PGOPTIONS \`$SAFE_OPTIONS\`}"
    echo "- $ROWS rows per table, a fresh table for every run (copied from a source table, indexes built after the load, VACUUM ANALYZE, CHECKPOINT):"
    echo "  - \`orders (id bigserial PRIMARY KEY, name varchar(100), customer_id int, currency text, price numeric(10,2), price_cents int)\`, index on customer_id; currency 'eur' in 30% of the rows (every page), price_cents NULL in the oldest 60%"
    echo "  - \`customers (id bigserial PRIMARY KEY, name varchar(100), payload jsonb, email text)\`; 70% of the payloads have an email, the column is NULL"
    echo "  - \`events (id bigserial PRIMARY KEY, name varchar(100), created_at timestamptz, kind text, payload jsonb)\`, index on created_at, a payload of about 150 bytes; the oldest 40% (by id) created 91 to 150 days ago"
    echo "- concurrent client: pgbench, two connections at $((RATE / 2)) statements/s each: \`SELECT id, name, <column> FROM <table> ORDER BY id LIMIT 20\` and \`UPDATE <table> SET name = ... WHERE id = <random>\`. Latency = time each statement took in the server (pgbench -l time minus schedule lag), over the statements that started during the run; p99 = nearest rank; kept = statements completed per second during the run / in the ${BASELINE} s before it (median over the runs)"
    echo "- WAL = pg_current_wal_lsn() after minus before (includes the client's own few hundred updates); growth = size after / size before; indexes = all indexes, pkey = the primary key alone; HOT = n_tup_hot_upd / n_tup_upd (includes the client's updates)"
    echo "- vs one-shot = median over the runs of (time / the one-shot's time in the same run); WAL ratio against the one-shot's median run"
    echo "- rows = rows changed (command tag / summary NOTICE) of those that matched before the run; left = rows still matching after it (must be 0)"
    echo
    echo "Each method ran $RUNS time(s) on a fresh table, interleaved; each row is the run with the median time; the last columns list every run's time and the 1-minute load average at its end."
    if [ -n "$SVG" ]; then
        echo
        echo "What the concurrent client felt during those median runs (top: worst and p99 latency in flight per ${PICTURE_BUCKET} s, log scale; middle: its statements per second; bottom: % of the matching rows done as another session sees them):"
        echo
        echo "![client latency, throughput and progress over time, per method]($(basename "$SVG"))"
    fi
    if [ -n "$SKIPPED" ]; then
        echo
        echo "Skipped:$SKIPPED"
    fi
    echo
    echo "Statements:"
    echo
    for c in $CASES; do
        for m in $METHODS; do
            [ -z "$(method_missing "$c" "$m")" ] || continue
            echo "- $c, \`$m\`: \`$(method_sql "$c" "$m")\`"
        done
    done
    for c in $CASES; do
        grep -q "^$c	" "$WORK/median.tsv" || continue
        echo
        echo "## $(case_title "$c")"
        echo
        echo "| method | time (s) | vs one-shot | client max (ms) | p99 (ms) | SELECT / UPDATE max (ms) | throughput kept | rows | left | WAL (MB) | WAL vs one-shot | table MB before → after | indexes MB before → after | pkey MB before → after | HOT | every run (s) | load |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
        awk -F'\t' -v c="$c" '
            $1 != c { next }
            { mb = 1048576
              if ($2 == "oneshot") onewal = $11
              g_t = ($12 > 0 ? $13 / $12 : 0); g_i = ($14 > 0 ? $15 / $14 : 0); g_p = ($16 > 0 ? $17 / $16 : 0)
              hot = (c == "purge" ? "-" : sprintf("%.0f%%", ($18 > 0 ? 100 * $19 / $18 : 0)))
              printf "| %s | %.2f | %s | %.1f | %.1f | %.1f / %.1f | %s | %s of %s | %s | %.0f | %s | %.0f → %.0f (×%.2f) | %.0f → %.0f (×%.2f) | %.0f → %.0f (×%.2f) | %s | %s | %s |\n",
                  $2, $4, $25, $5, $6, $7, $8, $26, $22, $21, $23, $11 / mb,
                  (onewal > 0 ? sprintf("%.2f", $11 / onewal) : "-"),
                  $12 / mb, $13 / mb, g_t, $14 / mb, $15 / mb, g_i, $16 / mb, $17 / mb, g_p, hot, $27, $28
            }' "$WORK/median.tsv"
    done
} >"$MD"

echo
cat "$MD"
echo
echo "written: $MD${SVG:+, $SVG}"
if [ "$FAILED" != 0 ]; then
    echo "FAILED: a run left matching rows or changed another number of rows than matched" >&2
    exit 1
fi
