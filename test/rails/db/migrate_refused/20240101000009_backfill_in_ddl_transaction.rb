require "safe_backfill"

# Wrong on purpose: without disable_ddl_transaction! the migration runs in a
# transaction, where the procedure cannot commit its batches.  The helper
# must refuse before anything is sent.
class BackfillInDdlTransaction < ActiveRecord::Migration[6.1]
  include SafeBackfill::Migration

  def change
    safe_backfill :large_user, :status, "active", batch_size: 1000
  end
end
