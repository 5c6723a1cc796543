require "safe_backfill"

# A later deploy: wait for the detached backfill, then NOT NULL.
class DetachedUserTierNotNull < ActiveRecord::Migration[6.1]
  include SafeBackfill::Migration
  disable_ddl_transaction!

  def change
    ensure_backfill_finished :detached_user, :tier, timeout: "10 min"
    safe_set_not_null :detached_user, :tier
  end
end
