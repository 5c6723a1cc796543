#!/usr/bin/env bash
# knex migrations test: installs knex 3, pg and the contrib/knex package (as
# packed by npm pack) with npm into a private directory, then runs this
# directory's knex project (knexfile.js, migrations/) with the knex CLI
# against an already running PostgreSQL where the safe_backfill extension is
# installed (PGHOST/PGPORT/PGUSER point at it; the user may create
# databases).  It creates (and first drops) the database $KNEX_TEST_DB,
# seeds large_user, checks that a migration without
# exports.config = { transaction: false } (migrations_refused/) is refused,
# migrates under concurrent traffic, rolls back and migrates again.  Prints
# TAP lines and, when it ran to the end, "# knex: done"; when the npm
# registry cannot be reached, "# knex: SKIPPED (<reason>)" and nothing else.
#
#   KNEX_TEST_ROWS   large_user rows to seed (default 1000000)
#   KNEX_TEST_BATCH  backfill batch size (default 10000)
#   KNEX_TEST_DB     database name (default knex_safe_backfill)
#   KNEX_TEST_DETACHED_ROWS  detached_user rows, for the detached flow
#                    (migrations_detached/: 4 queues a detached run, 5 waits;
#                    default 50000)
#   KNEX_TEST_CHANGE_ROWS  change_user rows, for safeUpdate/safeDelete
#                    (migrations_change/: 6 and 7; batches of 500; default 4000)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib/framework_test.sh"

export PGDATABASE=${KNEX_TEST_DB:-knex_safe_backfill}
ROWS=${KNEX_TEST_ROWS:-1000000}
DETACHED_ROWS=${KNEX_TEST_DETACHED_ROWS:-50000}
CHANGE_ROWS=${KNEX_TEST_CHANGE_ROWS:-4000}
export SAFE_BACKFILL_CHANGE_BATCH_SIZE=500
export SAFE_BACKFILL_BATCH_SIZE=${KNEX_TEST_BATCH:-10000}
unset PGOPTIONS KNEX_MIGRATIONS_DIR KNEX_MIGRATIONS_TABLE
WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/knex_safe_backfill.XXXXXX")
trap 'rm -rf "$WORKDIR"' EXIT
NPM_DIR=$WORKDIR/npm
# npm's cache and its logs stay in the private directory too.
export npm_config_cache=$WORKDIR/npm-cache npm_config_update_notifier=false npm_config_fund=false \
    npm_config_audit=false npm_config_loglevel=error
export NODE_PATH=$NPM_DIR/node_modules   # the migrations require('knex-safe-backfill') from there

knex() { (cd "$HERE" && "$NPM_DIR/node_modules/.bin/knex" --knexfile "$HERE/knexfile.js" "$@"); }
version() {
    [ "$(q "SELECT to_regclass('knex_migrations') IS NOT NULL")" = t ] &&
        q "SELECT coalesce(string_agg(name, ',' ORDER BY id), '') FROM knex_migrations"
}

# knex 3, pg and the package as npm would install it from the registry (its
# "files"): npm pack, then npm install of the tarball.
install_packages() {
    mkdir -p "$NPM_DIR" &&
        (cd "$NPM_DIR" && npm init -y >/dev/null &&
         npm pack --silent --pack-destination "$NPM_DIR" "$HERE/../../contrib/knex" >/dev/null &&
         npm install --no-save knex@3 pg@8 "$NPM_DIR"/knex-safe-backfill-*.tgz) >"$WORKDIR/npm.log" 2>&1
}

main() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        echo "not ok - node and npm are installed"
        return 1
    fi
    # One quick retry: an unreachable registry is a skip, not a minute of backoff.
    if ! npm ping --fetch-retries=1 --fetch-retry-mintimeout=1000 --fetch-retry-maxtimeout=2000 \
            >"$WORKDIR/ping.log" 2>&1; then
        echo "# knex: SKIPPED (the npm registry cannot be reached: $(grep -m1 -iE 'err|fail' "$WORKDIR/ping.log"))"
        return 0
    fi
    ok "knex: npm installed knex 3, pg and knex-safe-backfill (packed from contrib/knex) into a private directory" \
        install_packages || { diag_tail "$WORKDIR/npm.log"; return 1; }
    echo "# knex $(node -p 'require("knex/package.json").version'), pg $(node -p 'require("pg/package.json").version'), node $(node --version), rows=$ROWS, batch=$SAFE_BACKFILL_BATCH_SIZE, database=$PGDATABASE"

    ok "knex: created database $PGDATABASE with the extension, $ROWS rows in large_user" \
        setup_database "$PGDATABASE" "$ROWS" || return 1
    ok "knex: $DETACHED_ROWS rows in detached_user (its writes counted)" \
        setup_detached_table "$DETACHED_ROWS" || return 1
    ok "knex: $CHANGE_ROWS rows in change_user, and copies with the plain UPDATEs and DELETE applied" \
        setup_change_table "$CHANGE_ROWS" || return 1

    (cd "$HERE" && node "$HERE/expression_cases.js")

    local log=$WORKDIR/migrate_1.log
    knex migrate:up 20240101000001_add_status.js >"$log" 2>&1
    is "knex: migration 1 added status and email_lower, nullable, NULL in every row" \
        "$? $(not_null_flag status) $(not_null_flag email_lower) $(null_counts)" "0 f f $ROWS $ROWS" ||
        diag_tail "$log"

    # Without transaction: false the helper refuses before sending anything.
    log=$WORKDIR/refused.log
    KNEX_MIGRATIONS_DIR=./migrations_refused KNEX_MIGRATIONS_TABLE=knex_migrations_refused \
        knex migrate:latest >"$log" 2>&1
    local rc=$?
    ok "knex: a backfill migration without transaction: false fails with SafeBackfillTransactionError saying to add it" \
        eval '[ $rc -ne 0 ] && grep -q "SafeBackfillTransactionError: safeBackfill(large_user.status) cannot run in a transaction" "$log" &&
              grep -q "Add \"exports.config = { transaction: false };\" to the migration file" "$log"' ||
        grep -m3 -E "failed|Error" "$log" | diag
    is "knex: the refused migration changed no row and was not recorded" \
        "$(null_counts) $(q 'SELECT count(*) FROM knex_migrations_refused')" "$ROWS $ROWS 0"

    log=$WORKDIR/migrate.log
    PGOPTIONS="-c safe_backfill.progress_interval=1" \
        run_migration_under_traffic knex "$log" "$NPM_DIR/node_modules/.bin/knex" --knexfile "$HERE/knexfile.js" migrate:latest
    is "knex: after migrate:latest every row is filled with what a plain UPDATE gives, rows inserted meanwhile included" \
        "$(null_counts) $(wrong_values)" "0 0 0"
    is "knex: status and email_lower are NOT NULL, no helper CHECK left, all three migrations recorded" \
        "$(not_null_flag status) $(not_null_flag email_lower) '$(check_constraints)' $(version)" \
        "t t '' 20240101000001_add_status.js,20240101000002_backfill_status.js,20240101000003_status_not_null.js"
    local transactions
    transactions=$(writing_transactions)
    ok "knex: large_user was filled in $transactions transactions (>= $ROWS rows / $SAFE_BACKFILL_BATCH_SIZE per batch)" \
        test "$transactions" -ge $((ROWS / SAFE_BACKFILL_BATCH_SIZE))
    check_notices_in "$log" knex

    # The two-deploy flow (migrations_detached/, its own bookkeeping table):
    # 4, in knex's default transaction, adds detached_user.tier and queues
    # its backfill on the trx; 5, a later deploy, waits and promotes.
    local log_a=$WORKDIR/detached_a.log
    KNEX_MIGRATIONS_DIR=./migrations_detached KNEX_MIGRATIONS_TABLE=knex_migrations_detached \
        knex migrate:up 20240101000004_detached_tier.js >"$log_a" 2>&1
    is "knex: migration 4 (add a column, queue its detached backfill, in the migration's transaction) succeeded" \
        "$? $(q 'SELECT string_agg(name, $$,$$) FROM knex_migrations_detached')" "0 20240101000004_detached_tier.js" ||
        diag_tail "$log_a"
    log=$WORKDIR/detached_b.log
    KNEX_MIGRATIONS_DIR=./migrations_detached KNEX_MIGRATIONS_TABLE=knex_migrations_detached \
        knex migrate:latest >"$log" 2>&1
    is "knex: migration 5 (ensureBackfillFinished, safeSetNotNull) succeeded" \
        "$? $(q 'SELECT string_agg(name, $$,$$ ORDER BY id) FROM knex_migrations_detached')" \
        "0 20240101000004_detached_tier.js,20240101000005_detached_tier_not_null.js" || diag_tail "$log"
    check_detached_flow knex "$log_a" "$DETACHED_ROWS" "$SAFE_BACKFILL_BATCH_SIZE"

    log=$WORKDIR/rollback.log
    knex migrate:rollback >"$log" 2>&1
    is "knex: migrate:rollback (the batch of 2 and 3) drops NOT NULL and keeps the values" \
        "$? $(not_null_flag status) $(not_null_flag email_lower) $(null_counts) $(version)" \
        "0 f f 0 0 20240101000001_add_status.js" || diag_tail "$log"
    local count
    count=$(q "SELECT count(*) FROM large_user")
    knex migrate:rollback >"$log" 2>&1
    is "knex: migrate:rollback again (1) drops the columns and keeps every row" \
        "$? $(not_null_flag status) $(q 'SELECT count(*) FROM large_user') $(version)" "0 missing $count " ||
        diag_tail "$log"

    log=$WORKDIR/replay.log
    knex migrate:latest >"$log" 2>&1
    is "knex: migrate:latest again: every row filled, both columns NOT NULL" \
        "$? $(null_counts) $(wrong_values) $(not_null_flag status) $(not_null_flag email_lower)" \
        "0 0 0 0 t t" || diag_tail "$log"

    # safeUpdate and safeDelete: in the migration's transaction refused
    # (migrations_refused/ 10, 11, each run alone); migrations_change/ 6 (its
    # down does nothing and says so) and 7 (its down sets the old values back).
    local name procedure
    for name in 20240101000010_update_in_transaction.js 20240101000011_delete_in_transaction.js; do
        log=$WORKDIR/refused_$name.log
        KNEX_MIGRATIONS_DIR=./migrations_refused KNEX_MIGRATIONS_TABLE=knex_migrations_refused \
            knex migrate:up "$name" >"$log" 2>&1
        rc=$?
        procedure=safeUpdate
        [ "$name" = 20240101000011_delete_in_transaction.js ] && procedure=safeDelete
        ok "knex: a $procedure migration without transaction: false fails with SafeBackfillTransactionError saying to add it" \
            eval '[ $rc -ne 0 ] && grep -q "SafeBackfillTransactionError: $procedure(change_user) cannot run in a transaction" "$log" &&
                  grep -q "Add \"exports.config = { transaction: false };\" to the migration file" "$log"' ||
            grep -m3 -E "failed|Error" "$log" | diag
    done
    is "knex: the refused migrations left change_user as seeded and were not recorded" \
        "$(change_user_differences change_user_orig) $(q 'SELECT count(*) FROM knex_migrations_refused')" "0 0"
    change() {
        KNEX_MIGRATIONS_DIR=./migrations_change KNEX_MIGRATIONS_TABLE=knex_migrations_change knex "$@"
    }
    change_version() { q "SELECT coalesce(string_agg(name, ',' ORDER BY id), '') FROM knex_migrations_change"; }
    log=$WORKDIR/change.log
    change migrate:latest >"$log" 2>&1
    is "knex: migrations 6 and 7 (safeUpdate, safeDelete, safeUpdate) succeeded" \
        "$? $(change_version)" "0 20240101000006_change_user_rows.js,20240101000007_change_user_currency.js" ||
        diag_tail "$log"
    check_change_migrations knex "$log" "$CHANGE_ROWS" "$SAFE_BACKFILL_CHANGE_BATCH_SIZE"
    change migrate:down >"$log" 2>&1
    is "knex: migrate:down of 7 (a safeUpdate of its own) sets the old values back: change_user is the plain A's copy" \
        "$? $(change_user_differences change_user_a) $(change_version)" "0 0 20240101000006_change_user_rows.js" ||
        diag_tail "$log"
    change migrate:down >"$log" 2>&1
    is "knex: migrate:down of 6 changes nothing and says so" \
        "$? $(change_user_differences change_user_a) $(grep -c '20240101000006_change_user_rows: not reversed' "$log") '$(change_version)'" \
        "0 0 1 ''" || diag_tail "$log"
    change migrate:latest >"$log" 2>&1
    is "knex: migrate:latest again: change_user as the plain statements leave it" \
        "$? $(change_user_differences change_user_ab)" "0 0" || diag_tail "$log"
}

main 2>&1 | tap_number | tee "$WORKDIR/tap.log"
drop_database "$PGDATABASE"
if grep -q '^# knex: SKIPPED' "$WORKDIR/tap.log"; then
    exit 0
fi
if grep -q '^1\.\.[1-9]' "$WORKDIR/tap.log"; then
    echo "# knex: done"
fi
! grep -q '^not ok' "$WORKDIR/tap.log"
