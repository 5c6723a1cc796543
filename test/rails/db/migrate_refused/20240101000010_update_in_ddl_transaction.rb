require "safe_backfill"

# Wrong on purpose (as 09): safe_update without disable_ddl_transaction!.
class UpdateInDdlTransaction < ActiveRecord::Migration[6.1]
  include SafeBackfill::Migration

  def change
    safe_update :change_user, { currency: "EUR" }, where: "currency = 'eur'", batch_size: 500
  end
end
