#!/usr/bin/env bash
# Alembic migrations test: runs this directory's Alembic project against an
# already running PostgreSQL where the safe_backfill extension is installed
# (PGHOST/PGPORT/PGUSER point at it; the user may create databases).  It
# creates (and first drops) the database $ALEMBIC_TEST_DB, seeds large_user,
# checks the helpers' refusals (offline mode, one transaction for all
# migrations), upgrades to head under concurrent traffic, downgrades and
# upgrades again.  Prints TAP lines and, when it ran to the end,
# "# alembic: done".
#
#   ALEMBIC_TEST_ROWS   large_user rows to seed (default 1000000)
#   ALEMBIC_TEST_BATCH  backfill batch size (default 10000)
#   ALEMBIC_TEST_DB     database name (default alembic_safe_backfill)
#   ALEMBIC_TEST_DETACHED_ROWS  detached_user rows, for the detached flow
#                       (0004 queues a detached run, 0005 waits; default 50000)
#   ALEMBIC_TEST_CHANGE_ROWS  change_user rows, for safe_update/safe_delete
#                       (0006, 0007; batches of 500; default 4000)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib/framework_test.sh"

export PGDATABASE=${ALEMBIC_TEST_DB:-alembic_safe_backfill}
ROWS=${ALEMBIC_TEST_ROWS:-1000000}
DETACHED_ROWS=${ALEMBIC_TEST_DETACHED_ROWS:-50000}
CHANGE_ROWS=${ALEMBIC_TEST_CHANGE_ROWS:-4000}
export SAFE_BACKFILL_CHANGE_BATCH_SIZE=500
export SAFE_BACKFILL_BATCH_SIZE=${ALEMBIC_TEST_BATCH:-10000}
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
unset ALEMBIC_TEST_ONE_TRANSACTION PGOPTIONS
WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/alembic_safe_backfill.XXXXXX")
trap 'rm -rf "$WORKDIR"' EXIT

alembic() { (cd "$HERE" && "$PYTHON" -m alembic -c "$HERE/alembic.ini" "$@"); }
version_table() { q "SELECT to_regclass('alembic_version') IS NOT NULL"; }
# The recorded version, empty when none is (or there is no version table).
version() {
    [ "$(version_table)" = t ] && q "SELECT string_agg(version_num, ',') FROM alembic_version"
}

main() {
    if ! "$PYTHON" -c 'import alembic, sqlalchemy, psycopg2' 2>"$WORKDIR/import.err"; then
        echo "not ok - python3-alembic, SQLAlchemy and psycopg2 are importable by $PYTHON"
        diag <"$WORKDIR/import.err"
        return 1
    fi
    echo "# alembic $("$PYTHON" -c 'import alembic, sqlalchemy; print(alembic.__version__, "SQLAlchemy", sqlalchemy.__version__)'), rows=$ROWS, batch=$SAFE_BACKFILL_BATCH_SIZE, database=$PGDATABASE"

    ok "alembic: created database $PGDATABASE with the extension, $ROWS rows in large_user" \
        setup_database "$PGDATABASE" "$ROWS" || return 1
    ok "alembic: $DETACHED_ROWS rows in detached_user (its writes counted)" \
        setup_detached_table "$DETACHED_ROWS" || return 1
    ok "alembic: $CHANGE_ROWS rows in change_user, and copies with the plain UPDATEs and DELETE applied" \
        setup_change_table "$CHANGE_ROWS" || return 1

    "$PYTHON" "$HERE/expression_cases.py"
    "$PYTHON" "$HERE/transaction_cases.py"

    # Offline mode writes a script: the helpers refuse, saying what to do.
    local log=$WORKDIR/offline.log
    alembic upgrade head --sql >"$log" 2>&1
    local rc=$?
    ok "alembic: upgrade head --sql fails in 0002 with MigrationTransactionError saying to run it online" \
        eval '[ $rc -ne 0 ] && grep -q "MigrationTransactionError: safe_backfill(large_user.status) cannot run here" "$log" &&
              grep -q "offline mode (--sql)" "$log" && grep -q "Run this migration online" "$log"' || diag_tail "$log" 5
    is "alembic: offline mode changed nothing in the database (version table, status column)" \
        "$(version_table) $(not_null_flag status)" "f missing"

    # All migrations in one transaction: the backfill would commit 0001's
    # work halfway; the helper refuses, and 0001 is rolled back with it.
    log=$WORKDIR/one_transaction.log
    ALEMBIC_TEST_ONE_TRANSACTION=1 alembic upgrade head >"$log" 2>&1
    rc=$?
    ok "alembic: with transaction_per_migration off, 0002 fails saying to set it and put the backfill first in its migration" \
        eval '[ $rc -ne 0 ] && grep -q "MigrationTransactionError: .*has already changed something" "$log" &&
              grep -q "transaction_per_migration=True" "$log"' || diag_tail "$log" 5
    is "alembic: the refused run changed nothing: 0001's new columns rolled back, no version recorded" \
        "$(not_null_flag status) $(not_null_flag email_lower) $(version)" "missing missing "

    log=$WORKDIR/upgrade_0001.log
    alembic upgrade 0001_add_status >"$log" 2>&1
    is "alembic: upgrade 0001 added status and email_lower, nullable, NULL in every row" \
        "$? $(not_null_flag status) $(not_null_flag email_lower) $(null_counts)" "0 f f $ROWS $ROWS" ||
        diag_tail "$log"

    log=$WORKDIR/upgrade_head.log
    PGOPTIONS="-c safe_backfill.progress_interval=1" \
        run_migration_under_traffic alembic "$log" "$PYTHON" -m alembic -c "$HERE/alembic.ini" upgrade 0003_status_not_null
    is "alembic: after upgrade head every row is filled with what a plain UPDATE gives, rows inserted meanwhile included" \
        "$(null_counts) $(wrong_values)" "0 0 0"
    is "alembic: status and email_lower are NOT NULL, no helper CHECK left, version 0003" \
        "$(not_null_flag status) $(not_null_flag email_lower) '$(check_constraints)' $(version)" \
        "t t '' 0003_status_not_null"
    local transactions
    transactions=$(writing_transactions)
    ok "alembic: large_user was filled in $transactions transactions (>= $ROWS rows / $SAFE_BACKFILL_BATCH_SIZE per batch)" \
        test "$transactions" -ge $((ROWS / SAFE_BACKFILL_BATCH_SIZE))
    check_notices_in "$log" alembic
    ok "alembic: the NOTICEs come under their migration's 'Running upgrade' line" \
        eval 'grep -A1 "Running upgrade 0001_add_status -> 0002_backfill_status" "$log" | grep -q "NOTICE: *safe_backfill: large_user.status"' ||
        diag_tail "$log" 40

    # The two-deploy flow: 0004 (in its transaction) adds detached_user.tier
    # and queues its backfill; 0005, a later deploy, waits and promotes.
    local log_a=$WORKDIR/detached_a.log
    alembic upgrade 0004_detached_tier >"$log_a" 2>&1
    is "alembic: upgrade 0004 (add a column, queue its detached backfill, one transaction) succeeded" \
        "$? $(version)" "0 0004_detached_tier" || diag_tail "$log_a"
    log=$WORKDIR/detached_b.log
    alembic upgrade 0005_detached_tier_not_null >"$log" 2>&1
    is "alembic: upgrade 0005 (ensure_backfill_finished, safe_set_not_null) succeeded" \
        "$? $(version)" "0 0005_detached_tier_not_null" || diag_tail "$log"
    check_detached_flow alembic "$log_a" "$DETACHED_ROWS" "$SAFE_BACKFILL_BATCH_SIZE"

    # safe_update and safe_delete: 0006 (not reversible) and 0007 (its
    # downgrade sets the old values back).
    log=$WORKDIR/change.log
    alembic upgrade 0007_change_currency >"$log" 2>&1
    is "alembic: upgrade 0006 and 0007 (safe_update, safe_delete, safe_update) succeeded" \
        "$? $(version)" "0 0007_change_currency" || diag_tail "$log"
    check_change_migrations alembic "$log" "$CHANGE_ROWS" "$SAFE_BACKFILL_CHANGE_BATCH_SIZE"
    ok "alembic: their NOTICEs come under their migration's 'Running upgrade' line" \
        eval 'grep -A1 "Running upgrade 0006_change_rows -> 0007_change_currency" "$log" | grep -q "NOTICE: *safe_update: change_user"' ||
        diag_tail "$log" 40
    alembic downgrade 0006_change_rows >"$log" 2>&1
    is "alembic: downgrade 0007 (a safe_update of its own) sets the old values back: change_user is the plain A's copy" \
        "$? $(change_user_differences change_user_a) $(version)" "0 0 0006_change_rows" || diag_tail "$log"
    alembic downgrade 0005_detached_tier_not_null >"$log" 2>&1
    is "alembic: downgrade 0006 changes nothing and says so" \
        "$? $(change_user_differences change_user_a) $(grep -c '0006_change_rows: not reversed' "$log") $(version)" \
        "0 0 1 0005_detached_tier_not_null" || diag_tail "$log"

    log=$WORKDIR/downgrade.log
    alembic downgrade 0002_backfill_status >"$log" 2>&1
    is "alembic: downgrade to 0002 drops NOT NULL and keeps the values" \
        "$? $(not_null_flag status) $(not_null_flag email_lower) $(null_counts) $(version)" \
        "0 f f 0 0 0002_backfill_status" || diag_tail "$log"
    local count
    count=$(q "SELECT count(*) FROM large_user")
    alembic downgrade base >"$log" 2>&1
    is "alembic: downgrade to base drops the columns and keeps every row" \
        "$? $(not_null_flag status) $(q 'SELECT count(*) FROM large_user') $(version)" "0 missing $count " ||
        diag_tail "$log"

    log=$WORKDIR/replay.log
    alembic upgrade head >"$log" 2>&1
    is "alembic: upgrade head again: every row filled, both columns NOT NULL, change_user as the plain statements leave it" \
        "$? $(null_counts) $(wrong_values) $(not_null_flag status) $(not_null_flag email_lower) $(change_user_differences change_user_ab) $(version)" \
        "0 0 0 0 t t 0 0007_change_currency" || diag_tail "$log"
}

main 2>&1 | tap_number | tee "$WORKDIR/tap.log"
drop_database "$PGDATABASE"
if grep -q '^1\.\.[1-9]' "$WORKDIR/tap.log"; then
    echo "# alembic: done"
fi
! grep -q '^not ok' "$WORKDIR/tap.log"
