require "safe_backfill"

# Each batch commits on its own: no DDL transaction around this migration.
class BackfillLargeUserStatus < ActiveRecord::Migration[6.1]
  include SafeBackfill::Migration
  disable_ddl_transaction!

  BATCH_SIZE = Integer(ENV.fetch("SAFE_BACKFILL_BATCH_SIZE", "10000"))

  def change
    safe_backfill :large_user, :status, "active", batch_size: BATCH_SIZE
    safe_backfill :large_user, :email_lower,
                  expression: Arel::Table.new(:large_user)[:email].lower, batch_size: BATCH_SIZE
  end
end
