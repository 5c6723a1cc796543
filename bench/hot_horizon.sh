#!/usr/bin/env bash
# HOT rounds against a transaction open elsewhere (issue 23): fill a fresh
# table (ROWS rows, primary key and two secondary indexes, full pages) with
# safe_backfill, serial or with 2 workers, with and without a REPEATABLE READ
# transaction holding a snapshot in ANOTHER database (or the same one), and
# print time, HOT share, heap and index growth.  Runs the cases interleaved,
# ROUNDS times.  Uses the cluster named by PGHOST/PGPORT (server defaults:
# fsync and synchronous_commit on); needs a database "other".
#   bench/hot_horizon.sh [ROWS] [ROUNDS] [CASES]
#   CASES: space-separated list of serial/none serial/other w2/none w2/other ...
set -eu
ROWS=${1:-40000}
ROUNDS=${2:-3}
CASES=${3:-"serial/none serial/other w2/none w2/other"}
PSQL="psql -X -q -At -v ON_ERROR_STOP=1"
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"

setup() {
    $PSQL <<SQL
CREATE EXTENSION IF NOT EXISTS safe_backfill;
DROP TABLE IF EXISTS hh;
CREATE TABLE hh (id int PRIMARY KEY, name text, code int) WITH (fillfactor = 100, autovacuum_enabled = off);
INSERT INTO hh SELECT g, 'name ' || g, g * 7 FROM generate_series(1, $ROWS) g;
CREATE INDEX ON hh (name);
CREATE INDEX ON hh (code);
ALTER TABLE hh ADD COLUMN status text;
VACUUM ANALYZE hh;
SQL
}

sizes() {
    $PSQL -c "SELECT pg_relation_size('hh') || ' ' || pg_indexes_size('hh')"
}

hold_snapshot() {   # $1: database
    psql -X -q -d "$1" -c "SET application_name = 'hh_holder'" \
        -c "BEGIN ISOLATION LEVEL REPEATABLE READ" -c "SELECT count(*) FROM pg_class" \
        -c "SELECT pg_sleep(3600)" >/dev/null 2>&1 &
    for _ in $(seq 100); do
        [ "$($PSQL -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'hh_holder' AND backend_xmin IS NOT NULL")" = 1 ] && return
        sleep 0.05
    done
    echo "holder did not start" >&2; exit 1
}

release_snapshot() {
    $PSQL -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'hh_holder'" >/dev/null
    wait 2>/dev/null || true
}

run_case() {   # mode/holder
    local mode=${1%/*} holder=${1#*/} workers=1 before after t0 t1 hot
    [ "$mode" = w2 ] && workers=2
    setup
    before=$(sizes)
    case $holder in
        other) hold_snapshot other ;;
        same) hold_snapshot "${PGDATABASE:-postgres}" ;;
    esac
    t0=$(date +%s.%N)
    $PSQL -c "CALL safe_backfill('hh', 'status', 'active', 1000, workers => $workers)"
    t1=$(date +%s.%N)
    [ "$holder" != none ] && release_snapshot
    after=$(sizes)
    $PSQL -c "SELECT pg_stat_force_next_flush()" >/dev/null
    sleep 0.2
    hot=$($PSQL -c "SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'hh'")
    set -- $before $after
    printf '%-12s %7.2fs  hot %5.1f%%  heap x%.2f  indexes x%.2f  load %s\n' "$mode/$holder" \
        "$(echo "$t1 - $t0" | bc)" "$(echo "100 * $hot / $ROWS" | bc -l)" \
        "$(echo "$3 / $1" | bc -l)" "$(echo "$4 / $2" | bc -l)" "$(cut -d' ' -f1 /proc/loadavg)"
}

for r in $(seq "$ROUNDS"); do
    for c in $CASES; do run_case "$c"; done
done
