require "safe_backfill"

# In the migration's transaction (no disable_ddl_transaction!): the column is
# added and its backfill queued as a detached run, which a background worker
# runs once the transaction commits; the migration returns at once.
class AddDetachedUserTier < ActiveRecord::Migration[6.1]
  include SafeBackfill::Migration

  def change
    add_column :detached_user, :tier, :text
    safe_backfill :detached_user, :tier, "basic", detached: true,
                  batch_size: Integer(ENV.fetch("SAFE_BACKFILL_BATCH_SIZE", "10000"))
  end
end
