require "safe_backfill"

# Wrong on purpose (as 09): safe_delete without disable_ddl_transaction!.
class DeleteInDdlTransaction < ActiveRecord::Migration[6.1]
  include SafeBackfill::Migration

  def up
    safe_delete :change_user, Arel::Table.new(:change_user)[:kind].eq("spam"), batch_size: 500
  end

  def down; end
end
