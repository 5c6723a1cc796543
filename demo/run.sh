#!/usr/bin/env bash
# demo/run.sh -- safe_backfill end to end, on a throwaway cluster.
#
#   bash demo/run.sh                 # 1,000,000 rows
#   DEMO_ROWS=200000 bash demo/run.sh
#
# Builds and installs the extension from this repository, starts a throwaway
# PostgreSQL 15 cluster (stopped again at exit), seeds small_user (10 rows)
# and large_user (DEMO_ROWS rows) like the seed project's Django models, adds
# the nullable status column, and fills it with
#     CALL safe_backfill('large_user', 'status', 'active', 10000)
# while a client keeps reading the first page of large_user on one connection
# and updating random rows on another, timing every statement.  If
# safe_set_not_null exists, it then makes the column NOT NULL and reports how
# long ACCESS EXCLUSIVE was held.  Ends with a summary; exits non-zero if any
# NULL is left.
#
# Environment: DEMO_ROWS (default 1000000), DEMO_CLIENT_RATE (statements/s of
# the concurrent client, both connections together, default 200), DEMO_BATCH
# (default 10000), KEEP_WORK=1 keeps the work directory (server log, client
# logs).
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"

ROWS=${DEMO_ROWS:-1000000}
RATE=${DEMO_CLIENT_RATE:-200}
BATCH=${DEMO_BATCH:-10000}
case "$ROWS$RATE$BATCH" in *[!0-9]*) die "DEMO_ROWS, DEMO_CLIENT_RATE and DEMO_BATCH must be integers" ;; esac

WORK=$(mktemp -d /tmp/safe_backfill_demo.XXXXXX)
trap 'cleanup_all; [ -n "${KEEP_WORK:-}" ] && echo "work directory kept: $WORK" >&2 || rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

step() { printf '\n== %s\n' "$*"; }

step "packages, build and install"
install_missing_packages
# in a copy: building writes object files, and the checkout is only read
mkdir -p "$WORK/src"
cp -a "$ROOT/." "$WORK/src/"
make -C "$WORK/src" -s PG_CONFIG="$PG_CONFIG" clean >/dev/null 2>&1
build_and_install "$WORK/src" "$WORK/build.log"
echo "built and installed safe_backfill from $ROOT"

step "throwaway cluster"
start_cluster "$WORK"
echo "PostgreSQL $(sqlv 'SHOW server_version') on socket $CL, port $PORT"
sqlv "CREATE DATABASE demo" >/dev/null
DB=demo
sql -c "CREATE EXTENSION safe_backfill"

step "seed: small_user 10 rows, large_user $ROWS rows"
t0=$(now_us)
seed_table small_user 10
seed_table large_user "$ROWS"
echo "seeded and VACUUM ANALYZEd in $(( ($(now_us) - t0) / 1000 )) ms; large_user is $(sqlv "SELECT pg_size_pretty(pg_table_size('large_user'))")"

step "migration 0002: add the nullable column (metadata only)"
sql -c "ALTER TABLE small_user ADD COLUMN status varchar(20)" \
    -c "ALTER TABLE large_user ADD COLUMN status varchar(20)"
echo "large_user NULL status rows: $(sqlv "SELECT count(*) FROM large_user WHERE status IS NULL")"

step "migration 0003: backfill small_user"
sql -c "CALL safe_backfill('small_user', 'status', 'active')"

step "migration 0003: backfill large_user in batches of $BATCH, with a client running alongside"
echo "client: two connections, $((RATE / 2))/s each: 'SELECT id, name, status FROM large_user ORDER BY id LIMIT 20'"
echo "        and 'UPDATE large_user SET name = ... WHERE id = <random>'"
size_before=$(sqlv "SELECT pg_table_size('large_user')")
client_start "$WORK/client" large_user "$ROWS" "$RATE"
t0=$(now_us)
# NOTICEs go to stderr and psql prints them as they arrive: show them live
# and keep a copy for the summary.
sql -c "CALL safe_backfill('large_user', 'status', 'active', $BATCH)" 2>&1 | tee "$WORK/backfill.out"
rc=${PIPESTATUS[0]}
t1=$(now_us)
sleep 0.2                       # let statements that started in the window finish
client_stop
[ "$rc" = 0 ] || die "safe_backfill failed"
read -r sel_n sel_max sel_p99 upd_n upd_max upd_p99 all_n all_max all_p99 <<<"$(client_stats "$WORK/client" "$t0" "$t1")"
size_after=$(sqlv "SELECT pg_table_size('large_user')")

backfill_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e6 }')
filled=$(sed -n 's/.*: filled \([0-9]*\) rows.*/\1/p' "$WORK/backfill.out" | tail -1)
detail=$(sed -n 's/^DETAIL: *//p' "$WORK/backfill.out" | tail -1)
batches=$(printf '%s\n' "$detail" | grep -oE '[0-9]+ batches' | tail -1 | cut -d' ' -f1)
rows_per_s=$(awk -v r="${filled:-0}" -v s="$backfill_s" 'BEGIN { printf "%.0f", (s > 0 ? r / s : 0) }')

# Promotion to NOT NULL, once safe_set_not_null exists.
#
# How long ACCESS EXCLUSIVE was held is measured from outside: a sampler
# session polls pg_locks about every millisecond and adds up the intervals in
# which a session held ACCESS EXCLUSIVE on large_user (see ae_sampler_start in
# bench/lib.sh).  That is a direct observation of the lock, independent of
# what the procedure reports about itself, accurate to about one sampling
# period.  The concurrent client's worst statement time during the promotion
# is reported too: that is what the application actually felt.
promo="not run (safe_set_not_null does not exist yet)"
promo_time="-"; promo_ae="-"; promo_self="-"; promo_client="-"
if [ -n "$(sqlv "SELECT to_regprocedure('safe_set_not_null(regclass,name,boolean,interval,integer)')")" ]; then
    step "migration 0004: CALL safe_set_not_null('large_user', 'status')"
    sql -c "CALL safe_set_not_null('small_user', 'status')"
    client_start "$WORK/client" large_user "$ROWS" "$RATE"
    ae_sampler_start large_user "$WORK/sampler.out"
    p0=$(now_us)
    sql -c "CALL safe_set_not_null('large_user', 'status')" 2>&1 | tee "$WORK/promote.out"
    prc=${PIPESTATUS[0]}
    p1=$(now_us)
    ae_sampler_stop "$WORK/sampler.out"
    read -r ae_ep ae_held ae_longest ae_waited ae_samples ae_period <<<"$AE_RESULT"
    sleep 0.2
    client_stop
    read -r psel_n psel_max _ pupd_n pupd_max _ _ pall_max _ <<<"$(client_stats "$WORK/client" "$p0" "$p1")"
    [ "$prc" = 0 ] || die "safe_set_not_null failed"
    promo="done"
    promo_time=$(awk -v a="$p0" -v b="$p1" 'BEGIN { printf "%.0f ms", (b - a) / 1000 }')
    if [ "$ae_ep" = 0 ]; then
        promo_ae="no hold seen by sampling every ${ae_period} ms (each was shorter)"
    else
        promo_ae="${ae_held} ms in ${ae_ep} hold(s), longest ${ae_longest} ms (sampled every ${ae_period} ms)"
    fi
    # What the procedure reports about itself, e.g. "ACCESS EXCLUSIVE held 3 times, 0.80 ms in total".
    promo_self=$(grep -oE 'ACCESS EXCLUSIVE held [0-9]+ times?, [0-9.]+ ms in total' "$WORK/promote.out" | tail -1)
    promo_self=${promo_self#ACCESS EXCLUSIVE }
    promo_self=${promo_self:-"(no such line in its NOTICEs)"}
    promo_client="max ${pall_max} ms (SELECT ${psel_max} ms over ${psel_n}, UPDATE ${pupd_max} ms over ${pupd_n})"
fi

nulls_left=$(sqlv "SELECT count(*) FROM large_user WHERE status IS NULL")
attnotnull=$(sqlv "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'large_user'::regclass AND attname = 'status'")

step "summary"
{
    printf '| %-38s | %s |\n' "large_user" "value"
    printf '|%s|%s|\n' "----------------------------------------" "------------------------------------------"
    printf '| %-38s | %s |\n' "rows" "$ROWS"
    printf '| %-38s | %s |\n' "rows filled" "${filled:-?}"
    printf '| %-38s | %s |\n' "batches" "${batches:-?}"
    printf '| %-38s | %s |\n' "safe_backfill's own summary" "${detail:-?}"
    printf '| %-38s | %s s |\n' "backfill total time (wall)" "$backfill_s"
    printf '| %-38s | %s |\n' "rows/s" "$rows_per_s"
    printf '| %-38s | %s |\n' "table size before -> after" "$(awk -v a="$size_before" -v b="$size_after" 'BEGIN { printf "%.0f MB -> %.0f MB (x%.2f)", a/1048576, b/1048576, b/a }')"
    printf '| %-38s | %s |\n' "client statements during backfill" "$all_n ($sel_n SELECT, $upd_n UPDATE; ${RATE}/s)"
    printf '| %-38s | %s |\n' "client latency max / p99, all" "$all_max ms / $all_p99 ms"
    printf '| %-38s | %s |\n' "  SELECT ... ORDER BY id LIMIT 20" "$sel_max ms / $sel_p99 ms"
    printf '| %-38s | %s |\n' "  UPDATE ... WHERE id = <random>" "$upd_max ms / $upd_p99 ms"
    printf '| %-38s | %s |\n' "NULLs left" "$nulls_left"
    printf '| %-38s | %s |\n' "promotion (safe_set_not_null)" "$promo"
    printf '| %-38s | %s |\n' "  promotion total time" "$promo_time"
    printf '| %-38s | %s |\n' "  ACCESS EXCLUSIVE, sampled (pg_locks)" "$promo_ae"
    printf '| %-38s | %s |\n' "  ACCESS EXCLUSIVE, self-reported" "$promo_self"
    printf '| %-38s | %s |\n' "  client during promotion" "$promo_client"
    printf '| %-38s | %s |\n' "status attnotnull" "$attnotnull"
} | tee "$WORK/summary.md"
echo "latency = time each statement took in the server (pgbench -l time minus schedule lag)"

if [ "$nulls_left" != 0 ]; then
    echo "FAILED: $nulls_left NULLs left in large_user.status" >&2
    exit 1
fi
