# Helpers shared by demo/run.sh and bench/run (sourced, not run).
#
# Everything here talks only to the throwaway cluster that start_cluster made:
# every psql/pgbench call names its socket directory and port explicitly.
# Needs only what Debian's postgresql-15 package and the base system bring:
# bash, psql, pgbench and awk (mawk is fine).

PG_MAJOR=15
# PG_CONFIG picks the PostgreSQL installation to build against, install into
# and run (default: Debian's).  A relocatable copy of it keeps a benchmark's
# build out of the system installation that others use.
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/$PG_MAJOR/bin/pg_config}
PG_BIN=$("$PG_CONFIG" --bindir 2>/dev/null || echo "/usr/lib/postgresql/$PG_MAJOR/bin")
APT_PACKAGES="postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR postgresql-contrib-$PG_MAJOR make gcc"

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# A package is there if dpkg knows it as installed, or if an installed package
# Provides it (Debian 12's postgresql-15 provides postgresql-contrib-15).
have_package() {
    dpkg -s "$1" >/dev/null 2>&1 && return 0
    dpkg-query -W -f='${Status}|${Provides}\n' 2>/dev/null |
        grep '^install ok installed|' | grep -Eq "(\||, )$1( |,|$)"
}

# install_missing_packages [PACKAGE ...]: APT_PACKAGES and the packages
# named (bench/run adds gnuplot-nox, which draws its picture).
install_missing_packages() {
    local p missing=""
    for p in $APT_PACKAGES "$@"; do
        have_package "$p" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    [ "$(id -u)" = 0 ] || die "missing packages:$missing (run as root to install them)"
    local t0=$SECONDS
    log "installing the missing Debian packages:$missing"
    log "  apt-get update ..."
    apt-get update -qq || die "apt-get update failed"
    log "  apt-get install (downloads and sets up PostgreSQL and a compiler: a few minutes on a fresh machine) ..."
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null ||
        die "apt-get install$missing failed"
    log "  installed in $((SECONDS - t0)) s"
}

# Build the extension in the source tree $1 (a private copy: building writes object
# files) and install it; installs of concurrent runs go one at a time.
build_and_install() {
    local root=$1 buildlog=$2
    export PATH="$PG_BIN:$PATH"
    log "building the extension from $root (make) and installing it into $("$PG_CONFIG" --pkglibdir) (make install) ..."
    # shellcheck source=../test/install.sh
    . "$ROOT/test/install.sh"
    if ! { make -C "$root" -s PG_CONFIG="$PG_CONFIG" && install_built_extension "$root"; } >"$buildlog" 2>&1; then
        cat "$buildlog" >&2
        die "building the extension failed"
    fi
}

# start_cluster WORKDIR [setting ...]: initdb + start a throwaway cluster under
# WORKDIR/cluster with test/cluster.sh.  Sets CL (socket dir) and PORT.
start_cluster() {
    local work=$1
    shift
    # Nothing from the caller's environment may point us at another server.
    unset PGHOSTADDR PGSERVICE PGSERVICEFILE PGDATABASE PGOPTIONS PGPASSWORD \
          PGPASSFILE PGTARGETSESSIONATTRS PGAPPNAME PGSSLMODE
    export PG_BINDIR=$PG_BIN
    # shellcheck source=../test/cluster.sh
    . "$ROOT/test/cluster.sh"
    PORT=$(free_port) || die "no free port"
    CL=$work/cluster
    # The server runs as the postgres OS user: it must be able to reach CL.
    chmod 755 "$work"
    cluster_start "$CL" "$PORT" "$@" || die "could not start the cluster in $CL"
    CLUSTER_STARTED=1
}

stop_cluster() {
    [ -n "${CLUSTER_STARTED:-}" ] && cluster_stop "$CL"
    CLUSTER_STARTED=
}

# psql against our cluster only; database $DB.
sql() {
    "$PG_BIN/psql" -X -q -h "$CL" -p "$PORT" -U postgres -d "${DB:-postgres}" \
        -v ON_ERROR_STOP=1 "$@"
}
# one value
sqlv() { sql -At -c "$1"; }

now_us() { date +%s%6N; }

# ---------------------------------------------------------------------------
# Seeding: the shape of the seed project's Django models (db_table small_user
# and large_user: id bigserial primary key, name varchar(100) NOT NULL).
# ---------------------------------------------------------------------------
seed_table() {
    local table=$1 rows=$2
    # synchronous_commit = on for the load: with test/cluster.sh's setting (off)
    # the INSERT's commit record may not be flushed yet when VACUUM runs, so
    # VACUUM can set neither hint bits nor the visibility map, and every
    # index-only scan afterwards fetches heap pages.  A table that has been
    # in production a while is all-visible; make it so here too.
    sql <<SQL
SET client_min_messages = warning;
SET synchronous_commit = on;
DROP TABLE IF EXISTS $table;
CREATE TABLE $table (id bigserial PRIMARY KEY, name varchar(100) NOT NULL);
INSERT INTO $table (name) SELECT 'User ' || g FROM generate_series(1, $rows) g;
VACUUM ANALYZE $table;
SQL
}

# ---------------------------------------------------------------------------
# The concurrent client: two pgbench processes, one connection each, like two
# requests of an application served by two connections: a reader running
# 'SELECT id, name, status FROM t ORDER BY id LIMIT 20' and a writer running
# a point UPDATE of a random row, each at RATE/2 statements per second (-R),
# so every method gets the same load and a blocked writer does not stop the
# reader.  -l writes one line per statement:
#   client tx_no time_us script_no epoch_s epoch_us lag_us
# With -R, time_us counts from the scheduled start, so it includes the wait
# in pgbench's own queue (lag_us) behind an earlier, blocked statement of the
# same connection; we report time_us - lag_us, i.e. how long the statement
# itself took in the server.
#
# The client is stopped by pg_terminate_backend() on its connections:
# pgbench then ends on its own and flushes its log (a signal would lose the
# tail of it).
# ---------------------------------------------------------------------------
CLIENT_APP=safe_backfill_client
CLIENT_PIDS=""

# client_start DIR TABLE ROWS RATE [COLUMN]: COLUMN is the one being filled
# (status unless given); the reader selects it.
client_start() {
    local dir=$1 table=$2 rows=$3 rate=$4 col=${5:-status} kind i
    mkdir -p "$dir"
    rm -f "$dir"/*.log.* "$dir"/*.out
    cat >"$dir/select.sql" <<SQL
SELECT id, name, $col FROM $table ORDER BY id LIMIT 20;
SQL
    cat >"$dir/update.sql" <<SQL
\set id random(1, :rows)
UPDATE $table SET name = 'User ' || :id || ' renamed' WHERE id = :id;
SQL
    CLIENT_PIDS=""
    for kind in select update; do
        PGAPPNAME=$CLIENT_APP "$PG_BIN/pgbench" -n -h "$CL" -p "$PORT" -U postgres "$DB" \
            -c 1 -j 1 -R "$(( (rate + 1) / 2 ))" -T 3600 -D rows="$rows" \
            -f "$dir/$kind.sql" -l --log-prefix="$dir/$kind.log" >"$dir/$kind.out" 2>&1 &
        CLIENT_PIDS="$CLIENT_PIDS $!"
    done
    # Wait until both are connected.
    for i in $(seq 1 200); do
        [ "$(sqlv "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$CLIENT_APP'")" -ge 2 ] && return 0
        for pid in $CLIENT_PIDS; do
            kill -0 "$pid" 2>/dev/null || { cat "$dir"/*.out >&2; die "pgbench did not start"; }
        done
        sleep 0.05
    done
    die "pgbench did not connect"
}

client_stop() {
    [ -n "$CLIENT_PIDS" ] || return 0
    sqlv "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '$CLIENT_APP'" >/dev/null || true
    local i pid
    for pid in $CLIENT_PIDS; do
        for i in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -0 "$pid" 2>/dev/null && kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    CLIENT_PIDS=""
}

# client_stats DIR T0_US T1_US: statements that started within [T0, T1].
# Prints "select_n select_max_ms select_p99_ms update_n update_max_ms
# update_p99_ms all_n all_max_ms all_p99_ms" (p99 = nearest rank).
client_stats() {
    local dir=$1 t0=$2 t1=$3
    { sed 's/^/0 /' "$dir"/select.log.* 2>/dev/null; sed 's/^/1 /' "$dir"/update.log.* 2>/dev/null; } |
    awk -v t0="$t0" -v t1="$t1" 'NF >= 8 {
            svc = $4 - $8; if (svc < 0) svc = 0
            start = $6 * 1000000 + $7 - svc
            if (start >= t0 && start <= t1) { print $1, svc; print "9", svc }
        }' |
    sort -k1,1n -k2,2n |
    awk 'function flush() {
            if (!have) return
            idx = int(n * 0.99); if (idx < n * 0.99) idx++; if (idx < 1) idx = 1
            res[k] = sprintf("%d %.1f %.1f", n, v[n] / 1000, v[idx] / 1000)
        }
        { if (!have || $1 != k) { flush(); k = $1 ""; n = 0; have = 1 } v[++n] = $2 }
        END {
            flush()
            for (i = 0; i < 3; i++) {
                key = (i == 0 ? "0" : i == 1 ? "1" : "9")
                printf "%s%s", (key in res ? res[key] : "0 0 0"), (i < 2 ? " " : "\n")
            }
        }'
}

# client_save DIR DEST: keep the client's per-statement logs of one run
# (client_start of the next run deletes them) for the picture.
client_save() {
    mkdir -p "$2"
    cat "$1"/select.log.* >"$2/select.log" 2>/dev/null
    cat "$1"/update.log.* >"$2/update.log" 2>/dev/null
    return 0
}

# ---------------------------------------------------------------------------
# The fill's progress as a client sees it: a separate connection counts, every
# PROGRESS_EVERY seconds (psql's \watch, one short transaction each: no
# snapshot held in between), the rows of TABLE whose COLUMN is NOT NULL among
# those visible to it, in a block sample of about 200 pages (TABLESAMPLE
# SYSTEM, the same blocks every time: REPEATABLE), so that a poll reads about
# 200 pages (13,000 to 33,000 rows in the default cases) whatever the table's
# size.  It counts committed rows only: a
# one-shot UPDATE stays at 0% until it commits, which is what the
# application sees.  Every method is measured the same way.  One line per
# poll in OUT: epoch_us filled sampled.  Stopped like the client, by
# terminating its connection.
# ---------------------------------------------------------------------------
PROGRESS_APP=safe_backfill_progress_poll
PROGRESS_EVERY=0.25
PROGRESS_PID=""

# progress_start TABLE COL OUT [COUNTED]: COUNTED is what is counted as done
# in the sample (default count(COL), the rows filled).
progress_start() {
    local table=$1 col=$2 out=$3 counted=${4:-count($2)} pct i
    pct=$(sqlv "SELECT least(100, round(20000.0 / greatest(relpages, 1), 2)) FROM pg_class WHERE oid = '$table'::regclass")
    printf '%s\n' \
        "SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::bigint, $counted, count(*) FROM $table TABLESAMPLE SYSTEM ($pct) REPEATABLE (1)" \
        "\\watch $PROGRESS_EVERY" |
        PGAPPNAME=$PROGRESS_APP "$PG_BIN/psql" -X -At -F ' ' -h "$CL" -p "$PORT" -U postgres -d "$DB" >"$out" 2>&1 &
    PROGRESS_PID=$!
    for i in $(seq 1 100); do
        [ "$(sqlv "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$PROGRESS_APP'")" -ge 1 ] && return 0
        kill -0 "$PROGRESS_PID" 2>/dev/null || die "progress poll did not start: $(cat "$out")"
        sleep 0.02
    done
    die "progress poll did not connect"
}

progress_stop() {
    [ -n "$PROGRESS_PID" ] || return 0
    sqlv "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '$PROGRESS_APP'" >/dev/null || true
    local i
    for i in $(seq 1 100); do
        kill -0 "$PROGRESS_PID" 2>/dev/null || break
        sleep 0.02
    done
    kill -0 "$PROGRESS_PID" 2>/dev/null && kill "$PROGRESS_PID" 2>/dev/null
    wait "$PROGRESS_PID" 2>/dev/null
    PROGRESS_PID=""
}

# ---------------------------------------------------------------------------
# How long ACCESS EXCLUSIVE was held on a table.  A DO block polls pg_locks
# (which reads the live lock table, not a snapshot) about once a millisecond
# and records every interval in which some session held, or waited for, an
# ACCESS EXCLUSIVE lock on the table.  Each interval is measured from the
# first sample that saw it to the first sample that no longer did, so it is
# accurate to about one sampling period (reported as sample_ms); a hold
# shorter than that can be missed entirely.  It commits after every sample
# so that it holds back no xmin horizon.
# Results land in ae_sampler_result (one row).
# ---------------------------------------------------------------------------
SAMPLER_APP=safe_backfill_lock_sampler

ae_sampler_start() {
    local table=$1 out=$2
    sql <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS ae_sampler_stop, ae_sampler_result;
CREATE TABLE ae_sampler_stop (stop boolean);
CREATE TABLE ae_sampler_result (
    held_episodes int, held_ms float8, held_longest_ms float8,
    waited_ms float8, samples int, sample_ms float8);
SQL
    PGAPPNAME=$SAMPLER_APP sql >"$out" 2>&1 <<SQL &
DO \$\$
DECLARE
    rel oid := '$table'::regclass;
    db oid := (SELECT oid FROM pg_database WHERE datname = current_database());
    started timestamptz := clock_timestamp();
    t timestamptz;
    held bool; waited bool;
    prev_held bool := false; prev_waited bool := false;
    held_since timestamptz; waited_since timestamptz;
    episodes int := 0;
    held_total float8 := 0; held_longest float8 := 0; waited_total float8 := 0;
    d float8;
    n int := 0;
    stopping bool := false;
BEGIN
    LOOP
        t := clock_timestamp();
        SELECT coalesce(bool_or(granted), false), coalesce(bool_or(NOT granted), false)
          INTO held, waited
          FROM pg_locks
         WHERE locktype = 'relation' AND database = db AND relation = rel
           AND mode = 'AccessExclusiveLock';
        n := n + 1;
        IF held AND NOT prev_held THEN held_since := t; episodes := episodes + 1; END IF;
        IF prev_held AND NOT held THEN
            d := extract(epoch FROM t - held_since) * 1000;
            held_total := held_total + d;
            held_longest := greatest(held_longest, d);
        END IF;
        IF waited AND NOT prev_waited THEN waited_since := t; END IF;
        IF prev_waited AND NOT waited THEN
            waited_total := waited_total + extract(epoch FROM t - waited_since) * 1000;
        END IF;
        prev_held := held;
        prev_waited := waited;
        EXIT WHEN stopping AND NOT held AND NOT waited;
        EXIT WHEN t > started + interval '30 minutes';
        stopping := EXISTS (SELECT 1 FROM ae_sampler_stop);
        COMMIT;
        -- pg_sleep waits whole milliseconds: 0.0001 gives one ~1 ms wait,
        -- while 0.001 would often take two.  A sample costs ~50 us.
        PERFORM pg_sleep(0.0001);
    END LOOP;
    INSERT INTO ae_sampler_result
    VALUES (episodes, held_total, held_longest, waited_total, n,
            extract(epoch FROM clock_timestamp() - started) * 1000 / greatest(n, 1));
END
\$\$;
SQL
    SAMPLER_PID=$!
    # Wait until it runs.
    local i
    for i in $(seq 1 100); do
        [ "$(sqlv "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$SAMPLER_APP' AND state = 'active'")" -ge 1 ] && return 0
        sleep 0.02
    done
    die "lock sampler did not start: $(cat "$out")"
}

# Sets AE_RESULT to "episodes held_ms longest_ms waited_ms samples sample_ms".
# Call it directly, not in $(...): it must wait for the sampler, its child.
ae_sampler_stop() {
    local out=$1 rc
    sqlv "INSERT INTO ae_sampler_stop VALUES (true)" >/dev/null
    wait "$SAMPLER_PID"
    rc=$?
    SAMPLER_PID=
    [ "$rc" = 0 ] || die "lock sampler failed: $(cat "$out")"
    AE_RESULT=$(sqlv "SELECT held_episodes, round(held_ms::numeric, 1), round(held_longest_ms::numeric, 1),
                             round(waited_ms::numeric, 1), samples, round(sample_ms::numeric, 2)
                        FROM ae_sampler_result" | tr '|' ' ')
    [ -n "$AE_RESULT" ] || die "lock sampler left no result: $(cat "$out")"
}

# Stop whatever of ours still runs (for EXIT traps): our pgbench, our
# sampler, our cluster -- by the PIDs we started, nothing else.
cleanup_all() {
    local pid
    for pid in ${CLIENT_PIDS:-} ${TPCB_PID:-} ${PROGRESS_PID:-}; do kill "$pid" 2>/dev/null; done
    [ -n "${SAMPLER_PID:-}" ] && kill "$SAMPLER_PID" 2>/dev/null
    stop_cluster
}

# ---------------------------------------------------------------------------
# pgbench's own TPC-B load (bench/run's tpcb case): CLIENTS connections at
# full speed, no rate limit, one log line per transaction (-l, no -R):
#   client tx_no latency_us script_no epoch_s epoch_us
# (the epoch is the transaction's end).  Stopped like the client above, by
# terminating its connections, so that pgbench flushes its logs.
# ---------------------------------------------------------------------------
TPCB_APP=safe_backfill_tpcb
TPCB_PID=""

tpcb_start() {
    local dir=$1 clients=$2 i
    mkdir -p "$dir"
    rm -f "$dir"/tpcb.log* "$dir"/tpcb.out
    PGAPPNAME=$TPCB_APP "$PG_BIN/pgbench" -n -h "$CL" -p "$PORT" -U postgres "$DB" \
        -c "$clients" -j 2 -T 3600 -l --log-prefix="$dir/tpcb.log" >"$dir/tpcb.out" 2>&1 &
    TPCB_PID=$!
    for i in $(seq 1 200); do
        [ "$(sqlv "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$TPCB_APP'")" -ge "$clients" ] && return 0
        kill -0 "$TPCB_PID" 2>/dev/null || { cat "$dir/tpcb.out" >&2; die "pgbench (TPC-B) did not start"; }
        sleep 0.05
    done
    die "pgbench (TPC-B) did not connect"
}

tpcb_stop() {
    [ -n "$TPCB_PID" ] || return 0
    sqlv "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '$TPCB_APP'" >/dev/null || true
    local i
    for i in $(seq 1 200); do
        kill -0 "$TPCB_PID" 2>/dev/null || break
        sleep 0.05
    done
    kill -0 "$TPCB_PID" 2>/dev/null && kill "$TPCB_PID" 2>/dev/null
    wait "$TPCB_PID" 2>/dev/null
    TPCB_PID=""
}

# tpcb_stats DIR B0 B1 T0 T1 (microseconds since the epoch): baseline window
# [B0, B1], fill [T0, T1].  Prints "base_tps fill_tps n worst_ms p99_ms":
# transactions that ended in each window per second, and the latency of the
# transactions that overlapped the fill (started before T1, ended after T0).
tpcb_stats() {
    local dir=$1 b0=$2 b1=$3 t0=$4 t1=$5
    cat "$dir"/tpcb.log* 2>/dev/null |
    awk -v b0="$b0" -v b1="$b1" -v t0="$t0" -v t1="$t1" '
        NF >= 6 {
            end = $5 * 1000000 + $6; lat = $3
            if (end >= b0 && end < b1) nb++
            if (end >= t0 && end < t1) nf++
            if (end > t0 && end - lat < t1) { n++; v[n] = lat }
        }
        END {
            worst = 0
            for (i = 1; i <= n; i++) if (v[i] > worst) worst = v[i]
            printf "%.1f %.1f %d %.1f", nb / ((b1 - b0) / 1e6), nf / ((t1 - t0) / 1e6), n, worst / 1000
        }' | { read -r bt ft n w; p99=$(cat "$dir"/tpcb.log* 2>/dev/null |
               awk -v t0="$t0" -v t1="$t1" 'NF >= 6 { end = $5 * 1000000 + $6; if (end > t0 && end - $3 < t1) print $3 }' |
               sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) { print 0; exit } i = int(NR * 0.99); if (i < NR * 0.99) i++; if (i < 1) i = 1; printf "%.1f", v[i] / 1000 }');
               echo "$bt $ft $n $w $p99"; }
}
