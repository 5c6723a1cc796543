#!/usr/bin/env bash
# ActiveRecord migrations test: runs this directory's migrations (db/migrate)
# with a real ActiveRecord::MigrationContext (migrate.rb, as "rails
# db:migrate" does) against an already running PostgreSQL where the
# safe_backfill extension is installed (PGHOST/PGPORT/PGUSER point at it;
# the user may create databases).  It creates (and first drops) the database
# $RAILS_TEST_DB, seeds large_user, checks that a migration without
# disable_ddl_transaction! (db/migrate_refused) is refused, migrates under
# concurrent traffic, rolls back and migrates again.  Prints TAP lines and,
# when it ran to the end, "# rails: done".
#
#   RAILS_TEST_ROWS   large_user rows to seed (default 1000000)
#   RAILS_TEST_BATCH  backfill batch size (default 10000)
#   RAILS_TEST_DB     database name (default rails_safe_backfill)
#   RAILS_TEST_DETACHED_ROWS  detached_user rows, for the detached flow
#                     (migration 4 queues a detached run, 5 waits; default 50000)
#   RAILS_TEST_CHANGE_ROWS  change_user rows, for safe_update/safe_delete
#                     (migrations 6 and 7; batches of 500; default 4000)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib/framework_test.sh"

export PGDATABASE=${RAILS_TEST_DB:-rails_safe_backfill}
ROWS=${RAILS_TEST_ROWS:-1000000}
DETACHED_ROWS=${RAILS_TEST_DETACHED_ROWS:-50000}
CHANGE_ROWS=${RAILS_TEST_CHANGE_ROWS:-4000}
export SAFE_BACKFILL_CHANGE_BATCH_SIZE=500
export SAFE_BACKFILL_BATCH_SIZE=${RAILS_TEST_BATCH:-10000}
unset PGOPTIONS
WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/rails_safe_backfill.XXXXXX")
trap 'rm -rf "$WORKDIR"' EXIT

migrate() { (cd "$HERE" && ruby "$HERE/migrate.rb" "$@"); }
version() { q "SELECT coalesce(max(version), '') FROM schema_migrations"; }

main() {
    if ! ruby -e 'require "active_record"; require "pg"' 2>"$WORKDIR/require.err"; then
        echo "not ok - ruby-activerecord and ruby-pg can be required"
        diag <"$WORKDIR/require.err"
        return 1
    fi
    echo "# activerecord $(ruby -e 'require "active_record"; require "pg"; puts "#{ActiveRecord::VERSION::STRING}, pg #{PG::VERSION}"'), rows=$ROWS, batch=$SAFE_BACKFILL_BATCH_SIZE, database=$PGDATABASE"

    ok "rails: created database $PGDATABASE with the extension, $ROWS rows in large_user" \
        setup_database "$PGDATABASE" "$ROWS" || return 1
    ok "rails: $DETACHED_ROWS rows in detached_user (its writes counted)" \
        setup_detached_table "$DETACHED_ROWS" || return 1
    ok "rails: $CHANGE_ROWS rows in change_user, and copies with the plain UPDATEs and DELETE applied" \
        setup_change_table "$CHANGE_ROWS" || return 1

    (cd "$HERE" && ruby "$HERE/value_types.rb")

    local log=$WORKDIR/migrate_1.log
    migrate db/migrate migrate 20240101000001 >"$log" 2>&1
    is "rails: migration 1 added status and email_lower, nullable, NULL in every row" \
        "$? $(not_null_flag status) $(not_null_flag email_lower) $(null_counts)" "0 f f $ROWS $ROWS" ||
        diag_tail "$log"

    # Without disable_ddl_transaction! the helper refuses before sending anything.
    log=$WORKDIR/refused.log
    migrate db/migrate_refused migrate >"$log" 2>&1
    local rc=$?
    ok "rails: a backfill migration without disable_ddl_transaction! fails with SafeBackfill::TransactionError saying to add it" \
        eval '[ $rc -ne 0 ] && grep -q "SafeBackfill::TransactionError: safe_backfill(large_user.status) cannot run in a transaction" "$log" &&
              grep -q "Add disable_ddl_transaction! to the migration class" "$log"' || diag_tail "$log" 5
    is "rails: the refused migration changed no row and was not recorded" \
        "$(null_counts) $(version)" "$ROWS $ROWS 20240101000001"

    log=$WORKDIR/migrate.log
    PGOPTIONS="-c safe_backfill.progress_interval=1" \
        run_migration_under_traffic rails "$log" ruby "$HERE/migrate.rb" "$HERE/db/migrate" migrate 20240101000003
    is "rails: after migrating every row is filled with what a plain UPDATE gives, rows inserted meanwhile included" \
        "$(null_counts) $(wrong_values)" "0 0 0"
    is "rails: status and email_lower are NOT NULL, no helper CHECK left, version 20240101000003" \
        "$(not_null_flag status) $(not_null_flag email_lower) '$(check_constraints)' $(version)" \
        "t t '' 20240101000003"
    local transactions
    transactions=$(writing_transactions)
    ok "rails: large_user was filled in $transactions transactions (>= $ROWS rows / $SAFE_BACKFILL_BATCH_SIZE per batch)" \
        test "$transactions" -ge $((ROWS / SAFE_BACKFILL_BATCH_SIZE))
    check_notices_in "$log" rails
    ok "rails: the NOTICEs come under their helper's line in the migration's output" \
        eval 'grep -A1 -- "^-- safe_backfill(:large_user, :status)" "$log" | grep -q "^   -> NOTICE: *safe_backfill: large_user.status"' ||
        diag_tail "$log" 40
    is "rails: the connection's client_min_messages is back to ActiveRecord's warning after the CALL" \
        "$(cd "$HERE" && ruby -I"$HERE/../../contrib/rails" -e '
            require "active_record"; require "safe_backfill"
            ActiveRecord::Base.establish_connection(adapter: "postgresql", database: ENV["PGDATABASE"])
            c = ActiveRecord::Base.connection
            SafeBackfill.showing_notices(ActiveRecord::Migration.new, c) { c.execute("SELECT 1") }
            puts c.select_value("SHOW client_min_messages")' 2>&1)" "warning"

    # The two-deploy flow: migration 4 (in its transaction) adds
    # detached_user.tier and queues its backfill; 5, a later deploy, waits
    # and promotes.
    local log_a=$WORKDIR/detached_a.log
    migrate db/migrate migrate 20240101000004 >"$log_a" 2>&1
    is "rails: migration 4 (add a column, queue its detached backfill, in the DDL transaction) succeeded" \
        "$? $(version)" "0 20240101000004" || diag_tail "$log_a"
    log=$WORKDIR/detached_b.log
    migrate db/migrate migrate 20240101000005 >"$log" 2>&1
    is "rails: migration 5 (ensure_backfill_finished, safe_set_not_null) succeeded" \
        "$? $(version)" "0 20240101000005" || diag_tail "$log"
    check_detached_flow rails "$log_a" "$DETACHED_ROWS" "$SAFE_BACKFILL_BATCH_SIZE"

    log=$WORKDIR/rollback.log
    migrate db/migrate rollback 2 >"$log" 2>&1
    is "rails: rolling back migrations 5 and 4 drops detached_user.tier" \
        "$? $(q "SELECT count(*) FROM pg_attribute WHERE attrelid = 'detached_user'::regclass AND attname = 'tier'") $(version)" \
        "0 0 20240101000003" || diag_tail "$log"
    migrate db/migrate rollback >"$log" 2>&1
    is "rails: rolling back migration 3 drops NOT NULL and keeps the values" \
        "$? $(not_null_flag status) $(not_null_flag email_lower) $(null_counts) $(version)" \
        "0 f f 0 0 20240101000002" || diag_tail "$log"
    local count
    count=$(q "SELECT count(*) FROM large_user")
    migrate db/migrate rollback 2 >"$log" 2>&1
    is "rails: rolling back migrations 2 and 1 drops the columns and keeps every row" \
        "$? $(not_null_flag status) $(q 'SELECT count(*) FROM large_user') $(version)" "0 missing $count " ||
        diag_tail "$log"

    log=$WORKDIR/replay.log
    migrate db/migrate migrate 20240101000005 >"$log" 2>&1
    is "rails: migrating again: every row filled, both columns NOT NULL" \
        "$? $(null_counts) $(wrong_values) $(not_null_flag status) $(not_null_flag email_lower) $(version)" \
        "0 0 0 0 t t 20240101000005" || diag_tail "$log"

    # safe_update and safe_delete: without disable_ddl_transaction! refused
    # (db/migrate_refused 10, 11); migrations 6 (irreversible) and 7
    # (reverse: given).
    local procedure version
    for version in 20240101000010 20240101000011; do
        log=$WORKDIR/refused_$version.log
        migrate db/migrate_refused up $version >"$log" 2>&1
        rc=$?
        procedure=safe_update
        [ $version = 20240101000011 ] && procedure=safe_delete
        ok "rails: a $procedure migration without disable_ddl_transaction! fails with SafeBackfill::TransactionError saying to add it" \
            eval '[ $rc -ne 0 ] && grep -q "SafeBackfill::TransactionError: $procedure(change_user) cannot run in a transaction" "$log" &&
                  grep -q "Add disable_ddl_transaction! to the migration class" "$log"' || diag_tail "$log" 5
    done
    is "rails: the refused migrations left change_user as seeded and were not recorded" \
        "$(change_user_differences change_user_orig) $(version)" "0 20240101000005"
    log=$WORKDIR/change.log
    migrate db/migrate migrate >"$log" 2>&1
    is "rails: migrations 6 and 7 (safe_update, safe_delete, safe_update) succeeded" \
        "$? $(version)" "0 20240101000007" || diag_tail "$log"
    check_change_migrations rails "$log" "$CHANGE_ROWS" "$SAFE_BACKFILL_CHANGE_BATCH_SIZE"
    ok "rails: their NOTICEs come under their helper's line" \
        eval 'grep -A1 -- "^-- safe_delete(:change_user)" "$log" | grep -q "^   -> NOTICE: *safe_delete: change_user"' ||
        diag_tail "$log" 40
    migrate db/migrate rollback >"$log" 2>&1
    is "rails: rolling back 7 runs its reverse: (a safe_update): change_user is the plain A's copy" \
        "$? $(change_user_differences change_user_a) $(version)" "0 0 20240101000006" || diag_tail "$log"
    migrate db/migrate rollback >"$log" 2>&1
    rc=$?
    ok "rails: rolling back 6 fails with ActiveRecord::IrreversibleMigration naming safe_delete" \
        eval '[ $rc -ne 0 ] && grep -q "ActiveRecord::IrreversibleMigration" "$log" &&
              grep -q "safe_delete(change_user) cannot be reversed: the rows it deleted are gone" "$log"' ||
        diag_tail "$log" 5
    is "rails: ... and changes nothing: change_user is the plain A's copy, 6 still recorded" \
        "$(change_user_differences change_user_a) $(version)" "0 20240101000006"
    migrate db/migrate migrate >"$log" 2>&1
    is "rails: migrating 7 again: change_user as the plain statements leave it" \
        "$? $(change_user_differences change_user_ab) $(version)" "0 0 20240101000007" || diag_tail "$log"
}

main 2>&1 | tap_number | tee "$WORKDIR/tap.log"
drop_database "$PGDATABASE"
if grep -q '^1\.\.[1-9]' "$WORKDIR/tap.log"; then
    echo "# rails: done"
fi
! grep -q '^not ok' "$WORKDIR/tap.log"
