#!/bin/bash
# Citus figures for issue 23, on a 3-node loopback cluster (a coordinator
# that holds no shards and two workers) built from $PG_CONFIG's PostgreSQL,
# which must have citus.so and safe_backfill installed.  Server defaults
# (fsync, synchronous_commit on), 1M rows (ROWS), 32 shards (SHARDS).
#
#   bench/citus_perf.sh setup             build and start the cluster, load the base table
#   bench/citus_perf.sh fill N [METHODS]  N interleaved rounds of METHODS (default "update serial"):
#                                         update = one distributed UPDATE, serial = safe_backfill,
#                                         one = safe_backfill with citus_shards_per_node = 1,
#                                         wN = safe_backfill workers => N,
#                                         s:name=value[:name=value] = safe_backfill with those
#                                         settings (safe_backfill.name unless name has a dot); prints time and table growth
#   bench/citus_perf.sh notnull N CLIENTS N rounds: safe_set_not_null idle, then with CLIENTS
#                                         pgbench clients running point queries, interleaved
#   bench/citus_perf.sh stop              stop the cluster and remove it
#
# The cluster lives in $WORK (default /tmp/citus_perf); nothing else is touched.
set -euo pipefail
PG_CONFIG=${PG_CONFIG:?set PG_CONFIG}
BIN=$("$PG_CONFIG" --bindir)
WORK=${WORK:-/tmp/citus_perf}
ROWS=${ROWS:-1000000}
SHARDS=${SHARDS:-32}
BASEPORT=${BASEPORT:-57410}
NODES="c w1 w2"

as_pg() { (cd / && runuser -u postgres -- "$@"); }
port_of() { case $1 in c) echo $BASEPORT ;; w1) echo $((BASEPORT + 1)) ;; w2) echo $((BASEPORT + 2)) ;; esac; }
q() { "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(port_of "${2:-c}")" -U postgres -d postgres -c "$1"; }
now() { date +%s.%N; }

setup() {
    mkdir -p "$WORK"; chown postgres: "$WORK"
    for n in $NODES; do
        as_pg "$BIN/initdb" -D "$WORK/$n" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
        cat >>"$WORK/$n/postgresql.conf" <<CONF
port = $(port_of $n)
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
shared_preload_libraries = 'citus'
max_prepared_transactions = 100
max_connections = 200
shared_buffers = 256MB
max_wal_size = 4GB
log_min_messages = warning
CONF
        as_pg "$BIN/pg_ctl" -D "$WORK/$n" -l "$WORK/$n.log" -w start >/dev/null
        q "CREATE EXTENSION citus; CREATE EXTENSION safe_backfill; CREATE EXTENSION pgstattuple" $n
    done
    q "SELECT citus_set_coordinator_host('127.0.0.1', $(port_of c))" >/dev/null
    q "SELECT citus_add_node('127.0.0.1', $(port_of w1))" >/dev/null
    q "SELECT citus_add_node('127.0.0.1', $(port_of w2))" >/dev/null
    q "SET citus.shard_count = $SHARDS;
       CREATE TABLE base (id bigint PRIMARY KEY, a int NOT NULL, b text NOT NULL, created timestamptz NOT NULL);
       SELECT create_distributed_table('base', 'id');
       INSERT INTO base SELECT g, g % 1000, md5(g::text), now() FROM generate_series(1, $ROWS) g" >/dev/null
    q "VACUUM ANALYZE base"
    echo "cluster up: coordinator 127.0.0.1:$(port_of c), workers $(port_of w1) $(port_of w2)"
}

# A fresh copy of the base table with a NULL column v, vacuumed, analyzed, checkpointed.
fresh() {
    q "DROP TABLE IF EXISTS t;
       CREATE TABLE t (LIKE base INCLUDING ALL);
       SELECT create_distributed_table('t', 'id', colocate_with => 'base');
       INSERT INTO t SELECT * FROM base;
       ALTER TABLE t ADD COLUMN v int" >/dev/null
    q "VACUUM ANALYZE t"
    for n in $NODES; do q "CHECKPOINT" $n; done
}

# CPU seconds the three servers used so far: every backend's user+system time,
# and the postmasters' own and their exited children's.
cpu_seconds() {
    local n pm pids="" p
    for n in $NODES; do
        pm=$(head -1 "$WORK/$n/postmaster.pid")
        pids="$pids $pm $(pgrep -P "$pm" | tr '\n' ' ')"
    done
    for p in $pids; do
        [ -r /proc/$p/stat ] && sed 's/.*) //' /proc/$p/stat
    done | awk -v hz="$(getconf CLK_TCK)" '{ t += $12 + $13 } END { printf "%.2f", t / hz }'
    # postmasters: add children already reaped
    for n in $NODES; do sed 's/.*) //' /proc/"$(head -1 "$WORK/$n/postmaster.pid")"/stat; done |
        awk -v hz="$(getconf CLK_TCK)" '{ t += $14 + $15 } END { printf " %.2f\n", t / hz }'
}

run_method() {
    local m=$1 sql set="SET safe_backfill.progress_interval = 0"
    case $m in
        update) sql="UPDATE t SET v = 1" ;;
        serial) sql="CALL safe_backfill('t', 'v', 1)" ;;
        one) set="SET safe_backfill.citus_shards_per_node = 1"; sql="CALL safe_backfill('t', 'v', 1)" ;;
        w*) sql="CALL safe_backfill('t', 'v', 1, workers => ${m#w})" ;;
        s:*) # s:name=value:name=value... safe_backfill with safe_backfill.<name> settings
            local kv
            for kv in $(echo "${m#s:}" | tr ':' ' '); do
                case ${kv%%=*} in
                    *.*) set="$set; SET ${kv%%=*} = '${kv#*=}'" ;;
                    *) set="$set; SET safe_backfill.${kv%%=*} = '${kv#*=}'" ;;
                esac
            done
            sql="CALL safe_backfill('t', 'v', 1)" ;;
        *) echo "unknown method $m" >&2; exit 1 ;;
    esac
    fresh
    local size0 t0 t1 size1 nulls
    size0=$(q "SELECT citus_table_size('t')")
    local cpu0 cpu1
    cpu0=$(cpu_seconds | awk '{print $1 + $2}')
    t0=$(now)
    "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(port_of c)" -U postgres -d postgres \
        -c "$set" -c "$sql" 2>/dev/null
    t1=$(now)
    cpu1=$(cpu_seconds | awk '{print $1 + $2}')
    size1=$(q "SELECT citus_table_size('t')")
    nulls=$(q "SELECT count(*) FROM t WHERE v IS NULL")
    printf '%s %.2f s growth %.3f cpu %.2f s %s load=%s\n' "$m" "$(echo "$t1 - $t0" | bc)" \
        "$(echo "$size1 / $size0" | bc -l)" "$(echo "$cpu1 - $cpu0" | bc)" "nulls=$nulls" \
        "$(cut -d' ' -f1 /proc/loadavg)"
}

fill() {
    local rounds=$1; shift
    local methods=${*:-update serial}
    for ((r = 1; r <= rounds; r++)); do
        for m in $methods; do run_method "$m"; done
    done
}

notnull_once() {
    local clients=$1 pid="" t0 t1
    fresh
    q "UPDATE t SET v = 1" >/dev/null
    if [ "$clients" -gt 0 ]; then
        printf '\\set id random(1, %d)\nSELECT v FROM t WHERE id = :id;\n' "$ROWS" >"$WORK/point.sql"
        "$BIN/pgbench" -n -c "$clients" -T 600 -f "$WORK/point.sql" -h 127.0.0.1 -p "$(port_of c)" \
            -U postgres postgres >"$WORK/pgbench.out" 2>&1 &
        pid=$!
        sleep 2
    fi
    t0=$(now)
    q "CALL safe_set_not_null('t', 'v')" 2>"$WORK/notnull.err" || echo "FAILED: $(tail -2 "$WORK/notnull.err")"
    t1=$(now)
    [ -n "$pid" ] && kill "$pid" && wait "$pid" 2>/dev/null || true
    printf 'notnull clients=%d %.2f s attempts_noticed=%s load=%s\n' "$clients" "$(echo "$t1 - $t0" | bc)" \
        "$(grep -c 'waits for' "$WORK/notnull.err" || true)" "$(cut -d' ' -f1 /proc/loadavg)"
}

notnull() {
    local rounds=$1 clients=$2
    for ((r = 1; r <= rounds; r++)); do
        notnull_once 0
        notnull_once "$clients"
    done
}

stop() {
    for n in $NODES; do
        [ -d "$WORK/$n" ] && as_pg "$BIN/pg_ctl" -D "$WORK/$n" -m fast -w stop >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}

cmd=${1:?usage: $0 setup|fill N [methods]|notnull N CLIENTS|stop}; shift
"$cmd" "$@"
