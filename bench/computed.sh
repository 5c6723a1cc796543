#!/usr/bin/env bash
# bench/computed.sh -- computed values (expression => '...') against the
# one-shot UPDATE with the same expression, and a constant for reference.
#
#   bench/computed.sh                        # 1,000,000 rows, 3 runs
#   ROWS=200000 RUNS=5 CASES="seed_sub h_sub" bench/computed.sh
#   PG_CONFIG=/path/to/copy/bin/pg_config bench/computed.sh
#
# Starts its own throwaway cluster with the server's durability defaults
# (fsync, synchronous_commit, full_page_writes on), builds and installs this
# checkout.  Each method runs on a fresh copy of the table; runs are
# interleaved (oneshot sb const, oneshot sb const, ...).  Per run: wall time,
# the backend's CPU time (utime + stime of its /proc/self/stat, read by the
# session itself after the statement: less sensitive than the wall clock to
# what else the machine runs), WAL, table and index growth, NULLs left.  At
# the end, per case and method: median wall and CPU time and the median of
# the per-run ratios to the one-shot of the same run.
#
# Cases (CASES):
#   seed_sub    the seed table's shape: t (id bigint PRIMARY KEY, name
#               varchar(100), parent_id int, indexed), c := (SELECT p.name
#               FROM parent p WHERE p.id = t.parent_id), parent 10,000 rows
#   seed_lower  the same table without the parent_id index, c := lower(name)
#   h_sub       three indexes: t (id PRIMARY KEY, name, email, p_id), indexes
#               on name and email, c := (SELECT p.region FROM p WHERE p.id =
#               t.p_id), p 10,000 rows
#   h_lower     the same, c := lower(name)
# Methods (METHODS): oneshot (UPDATE t SET c = <expr> WHERE c IS NULL),
#   sb (safe_backfill(..., expression => '<expr>', batch_size => 10000)),
#   const (safe_backfill(..., 'Region 1234', 10000): the same table filled
#   with a constant of about the same width).
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"

ROWS=${ROWS:-1000000}
RUNS=${RUNS:-3}
CASES=${CASES:-seed_sub seed_lower h_sub h_lower}
METHODS=${METHODS:-oneshot sb const}

WORK=$(mktemp -d /tmp/safe_backfill_computed.XXXXXX)
trap 'stop_cluster; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
mkdir -p "$WORK/src"
cp -a "$ROOT/." "$WORK/src/"
make -C "$WORK/src" -s PG_CONFIG="$PG_CONFIG" clean >/dev/null 2>&1
build_and_install "$WORK/src" "$WORK/build.log"
start_cluster "$WORK" "fsync = on" "synchronous_commit = on" "full_page_writes = on"
sql -c "CREATE DATABASE bench" >/dev/null
DB=bench

sql <<SQL
SET client_min_messages = warning;
CREATE EXTENSION safe_backfill;
CREATE TABLE parent (id int PRIMARY KEY, name varchar(100) NOT NULL);
INSERT INTO parent SELECT g, 'Organisation ' || g FROM generate_series(1, 10000) g;
CREATE TABLE p (id int PRIMARY KEY, region varchar(100) NOT NULL);
INSERT INTO p SELECT g, 'Region ' || g FROM generate_series(1, 10000) g;
CREATE TABLE src_seed AS SELECT g::bigint AS id, ('User ' || g)::varchar(100) AS name,
  1 + g % 10000 AS parent_id FROM generate_series(1, $ROWS) g;
CREATE TABLE src_h AS SELECT g::bigint AS id, ('User ' || g)::varchar(100) AS name,
  'user' || g || '@example.com' AS email, 1 + g % 10000 AS p_id FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE parent, p;
SQL

prepare_table() {
    case $1 in
    seed_*) sql <<SQL
SET client_min_messages = warning; SET synchronous_commit = on;
DROP TABLE IF EXISTS t;
CREATE TABLE t (id bigint PRIMARY KEY, name varchar(100) NOT NULL, parent_id int NOT NULL);
INSERT INTO t SELECT * FROM src_seed;
$([ "$1" = seed_sub ] && echo "CREATE INDEX t_parent_id ON t (parent_id);")
VACUUM ANALYZE t;
ALTER TABLE t ADD COLUMN c varchar(100);
CHECKPOINT;
SQL
    ;;
    h_*) sql <<SQL
SET client_min_messages = warning; SET synchronous_commit = on;
DROP TABLE IF EXISTS t;
CREATE TABLE t (id bigint PRIMARY KEY, name varchar(100), email text, p_id int);
INSERT INTO t SELECT * FROM src_h;
CREATE INDEX t_name ON t (name);
CREATE INDEX t_email ON t (email);
VACUUM ANALYZE t;
ALTER TABLE t ADD COLUMN c varchar(100);
CHECKPOINT;
SQL
    ;;
    esac
}

case_expression() {
    case $1 in
    *_lower) echo "lower(name)" ;;
    seed_sub) echo "(SELECT p.name FROM parent p WHERE p.id = t.parent_id)" ;;
    h_sub) echo "(SELECT p.region FROM p WHERE p.id = t.p_id)" ;;
    esac
}

# run CASE METHOD: prints "case method wall_ms cpu_ms wal_bytes index_growth table_growth nulls load"
run() {
    local c=$1 m=$2 e q before t0 t1 cpu after
    e=$(case_expression "$c")
    case $m in
    oneshot) q="UPDATE t SET c = $e WHERE c IS NULL" ;;
    sb) q="CALL safe_backfill('t', 'c', expression => \$e\$$e\$e\$, batch_size => 10000)" ;;
    const) q="CALL safe_backfill('t', 'c', 'Region 1234'::varchar, 10000)" ;;
    esac
    before=$(sqlv "SELECT pg_current_wal_lsn() || ' ' || pg_indexes_size('t') || ' ' || pg_table_size('t')")
    t0=$(now_us)
    cpu=$(sql -At <<SQL
SET client_min_messages = warning;
$q;
SELECT (split_part(s, ' ', 14)::bigint + split_part(s, ' ', 15)::bigint) * 1000
       / $CLK_TCK FROM pg_read_file('/proc/self/stat') s;
SQL
) || die "$c $m failed"
    t1=$(now_us)
    set -- $before
    after=$(sqlv "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$1')::bigint || ' '
        || round(pg_indexes_size('t')::numeric / $2, 2) || ' ' || round(pg_table_size('t')::numeric / $3, 2)
        || ' ' || (SELECT count(*) FROM t WHERE c IS NULL)")
    echo "$c $m $(( (t1 - t0) / 1000 )) $cpu $after $(cut -d' ' -f1 /proc/loadavg)"
}

CLK_TCK=$(getconf CLK_TCK)
RAW=$WORK/raw.txt
: >"$RAW"
for r in $(seq 1 "$RUNS"); do
    for c in $CASES; do
        for m in $METHODS; do
            prepare_table "$c"
            run "$c" "$m" | tee -a "$RAW" >&2
        done
    done
done

echo "# computed values: $ROWS rows, $RUNS runs, $(date -u '+%Y-%m-%d %H:%M UTC'), load at end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "case method median_wall_ms median_cpu_ms wall_vs_oneshot cpu_vs_oneshot wal_MB index_growth table_growth"
awk '
    { key = $1 " " $2; n[key]++; wall[key, n[key]] = $3; cpu[key, n[key]] = $4; wal[key] = $5; idx[key] = $6; tbl[key] = $7
      run[$1, $2, n[key]] = $3 " " $4 }
    function median(arr, k, cnt,   i, j, t, v) {
        for (i = 1; i <= cnt; i++) v[i] = arr[k, i]
        for (i = 1; i <= cnt; i++) for (j = i + 1; j <= cnt; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
        return cnt % 2 ? v[(cnt + 1) / 2] : (v[cnt / 2] + v[cnt / 2 + 1]) / 2
    }
    END {
        for (key in n) {
            split(key, kc, " ")
            ok = (kc[1] " oneshot") in n
            for (i = 1; i <= n[key]; i++) if (ok) {
                rw[key, i] = wall[key, i] / wall[kc[1] " oneshot", i]
                rc[key, i] = cpu[key, i] / cpu[kc[1] " oneshot", i]
            }
            printf "%s %d %d %s %s %.0f %s %s\n", key, median(wall, key, n[key]), median(cpu, key, n[key]),
                ok ? sprintf("%.2f", median(rw, key, n[key])) : "-", ok ? sprintf("%.2f", median(rc, key, n[key])) : "-",
                wal[key] / 1048576, idx[key], tbl[key]
        }
    }' "$RAW" | sort
