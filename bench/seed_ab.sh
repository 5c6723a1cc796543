#!/usr/bin/env bash
# bench/seed_ab.sh -- the seed table with its two concurrent clients, and the
# three-index table filled with lower(name): the one-shot UPDATE against
# safe_backfill variants (settings, workers), interleaved in the same run.
#
#   bench/seed_ab.sh                                   # seed, 1M rows, 3 runs
#   CASES="seed h_lower" METHODS="oneshot sb sb_nowait sb2" RUNS=5 bench/seed_ab.sh
#   PG_CONFIG=/path/to/copy/bin/pg_config bench/seed_ab.sh
#
# PG_CONFIG is required (no default): it builds and installs into that
# installation, which on a shared machine must be a private copy.
#
# Starts its own throwaway cluster with the server's durability defaults
# (fsync, synchronous_commit, full_page_writes on), builds and installs this
# checkout.  Every run fills a freshly seeded table (as bench/run seeds them)
# while bench/run's concurrent client runs (a reader and a point-UPDATE
# writer, RATE statements/s together).  Runs are interleaved (a b c, a b c,
# ...).  Per run: wall time, the client's worst and p99 statement time over
# the statements that started during the fill, HOT share (includes the
# client's own updates), index and table growth, NULLs left, load.
# At the end, per case and method: median time, median of the per-run ratios
# to the one-shot of the same run, median and worst of the client's worst.
#
# Cases (CASES): seed (large_user, status := 'active'), h_lower (h with three
#   indexes, status := lower(name)), seed_lower (large_user, lower(name)).
# Methods (METHODS):
#   oneshot    UPDATE ... WHERE status IS NULL
#   sb         CALL safe_backfill(..., batch_size => BATCH)
#   sb_nowait  the same with safe_backfill.round_horizon_wait = off
#   sb_r1      the same with safe_backfill.hot_rounds = 1
#   sb_sync    the same with safe_backfill.synchronous_commit = on
#   sb2        the same with workers => 2
#   sb_t<N>    the same with target_batch_ms => N; sb2_t<N> with 2 workers
#   Extra settings for every safe_backfill method: SB_PGOPTIONS.
set -u -o pipefail

[ -n "${PG_CONFIG:-}" ] || { echo "error: set PG_CONFIG (the installation to build into and run)" >&2; exit 1; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"

ROWS=${ROWS:-1000000}
RUNS=${RUNS:-3}
CASES=${CASES:-seed}
METHODS=${METHODS:-oneshot sb sb_nowait sb2}
BATCH=${BATCH:-10000}
RATE=${RATE:-200}
SB_PGOPTIONS=${SB_PGOPTIONS:-}

WORK=$(mktemp -d /tmp/safe_backfill_seed_ab.XXXXXX)
trap 'cleanup_all; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
mkdir -p "$WORK/src"
cp -a "$ROOT/." "$WORK/src/"
make -C "$WORK/src" -s PG_CONFIG="$PG_CONFIG" clean >/dev/null 2>&1
build_and_install "$WORK/src" "$WORK/build.log"
start_cluster "$WORK" "fsync = on" "synchronous_commit = on" "full_page_writes = on"
sql -c "CREATE DATABASE bench" >/dev/null
DB=bench
sql -c "CREATE EXTENSION safe_backfill" >/dev/null

case_table() { case $1 in h_*) echo h ;; *) echo large_user ;; esac; }
case_set() { case $1 in *_lower) echo "lower(name)" ;; *) echo "'active'" ;; esac; }

prepare_table() {
    case $1 in
    seed|seed_lower) seed_table large_user "$ROWS"
        sql -c "ALTER TABLE large_user ADD COLUMN status varchar(20)" ;;
    h_lower) sql <<SQL
SET client_min_messages = warning;
SET synchronous_commit = on;
DROP TABLE IF EXISTS h;
CREATE TABLE h (id bigserial PRIMARY KEY, name varchar(100), email text);
INSERT INTO h (name, email)
SELECT 'User ' || g, 'user' || g || '@example.com' FROM generate_series(1, $ROWS) g;
CREATE INDEX h_name ON h (name);
CREATE INDEX h_email ON h (email);
VACUUM ANALYZE h;
ALTER TABLE h ADD COLUMN status varchar(20);
SQL
        ;;
    esac
    sql -c "CHECKPOINT" >/dev/null
}

# method_sql CASE METHOD, method_options METHOD (PGOPTIONS)
method_sql() {
    local t set args
    t=$(case_table "$1")
    set=$(case_set "$1")
    if [ "$set" = "'active'" ]; then args="'$t', 'status', 'active'::varchar, $BATCH"
    else args="'$t', 'status', expression => \$e\$$set\$e\$, batch_size => $BATCH"; fi
    case $2 in
    oneshot) echo "UPDATE $t SET status = $set WHERE status IS NULL" ;;
    sb2_t*) echo "CALL safe_backfill($args, workers => 2, target_batch_ms => ${2#sb2_t})" ;;
    sb_t*) echo "CALL safe_backfill($args, target_batch_ms => ${2#sb_t})" ;;
    sb2*) echo "CALL safe_backfill($args, workers => 2)" ;;
    sb*) echo "CALL safe_backfill($args)" ;;
    *) die "unknown method $2" ;;
    esac
}
method_options() {
    case $1 in
    oneshot) echo "" ;;
    *_nowait) echo "$SB_PGOPTIONS -c safe_backfill.round_horizon_wait=off" ;;
    *_r1) echo "$SB_PGOPTIONS -c safe_backfill.hot_rounds=1" ;;
    *_sync) echo "$SB_PGOPTIONS -c safe_backfill.synchronous_commit=on" ;;
    *) echo "$SB_PGOPTIONS" ;;
    esac
}

# run CASE METHOD: "case method ms client_max_ms client_p99_ms hot_pct index_growth table_growth nulls load"
run() {
    local c=$1 m=$2 t q hot0 t0 t1 stats hot nulls
    t=$(case_table "$c")
    prepare_table "$c"
    q=$(method_sql "$c" "$m")
    hot0=$(sqlv "SELECT pg_stat_get_tuples_hot_updated('$t'::regclass) || ' ' || pg_stat_get_tuples_updated('$t'::regclass)
                 || ' ' || pg_indexes_size('$t') || ' ' || pg_table_size('$t')")
    client_start "$WORK/client" "$t" "$ROWS" "$RATE"
    sleep 0.5
    t0=$(now_us)
    PGOPTIONS=$(method_options "$m") sql -c "SET client_min_messages = warning" -c "$q" >"$WORK/out.txt" 2>&1 ||
        { cat "$WORK/out.txt" >&2; die "$c $m failed"; }
    t1=$(now_us)
    sleep 0.3
    client_stop
    stats=$(client_stats "$WORK/client" "$t0" "$t1")
    set -- $hot0
    sleep 1
    hot=$(sqlv "SELECT round(100.0 * (pg_stat_get_tuples_hot_updated('$t'::regclass) - $1)
                / greatest(1, pg_stat_get_tuples_updated('$t'::regclass) - $2)) || ' '
                || round(pg_indexes_size('$t')::numeric / $3, 2) || ' ' || round(pg_table_size('$t')::numeric / $4, 2)")
    nulls=$(sqlv "SELECT count(*) FROM $t WHERE status IS NULL")
    set -- $stats
    echo "$c $m $(( (t1 - t0) / 1000 )) $8 $9 $hot $nulls $(cut -d' ' -f1 /proc/loadavg)"
}

RAW=$WORK/raw.txt
: >"$RAW"
for r in $(seq 1 "$RUNS"); do
    for c in $CASES; do
        for m in $METHODS; do
            run "$c" "$m" | tee -a "$RAW" >&2
        done
    done
done

echo "# seed_ab: $ROWS rows, $RUNS runs, batch $BATCH, client $RATE/s, $(date -u '+%Y-%m-%d %H:%M UTC'), load at end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "case method median_ms vs_oneshot client_max_median client_max_worst p99_median hot% indexes table loads"
awk '
    { key = $1 " " $2; n[key]++; k = n[key]; ms[key, k] = $3; mx[key, k] = $4; p99[key, k] = $5; hot[key] = $6
      idx[key] = $7; tbl[key] = $8; ld[key] = ld[key] (ld[key] == "" ? "" : "/") $10 }
    function median(arr, key, cnt,   i, j, t, v) {
        for (i = 1; i <= cnt; i++) v[i] = arr[key, i]
        for (i = 1; i <= cnt; i++) for (j = i + 1; j <= cnt; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
        return cnt % 2 ? v[(cnt + 1) / 2] : (v[cnt / 2] + v[cnt / 2 + 1]) / 2
    }
    END {
        for (key in n) {
            split(key, kc, " ")
            one = kc[1] " oneshot"
            ok = one in n
            worst = 0
            for (i = 1; i <= n[key]; i++) {
                if (ok) r[key, i] = ms[key, i] / ms[one, i]
                if (mx[key, i] + 0 > worst) worst = mx[key, i] + 0
            }
            printf "%s %d %s %.1f %.1f %.1f %s %s %s %s\n", key, median(ms, key, n[key]),
                ok ? sprintf("%.2f", median(r, key, n[key])) : "-", median(mx, key, n[key]), worst,
                median(p99, key, n[key]), hot[key], idx[key], tbl[key], ld[key]
        }
    }' "$RAW" | sort
