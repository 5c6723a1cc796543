require "safe_backfill"

# NOT NULL through a validated CHECK, without a scan under ACCESS EXCLUSIVE;
# rolled back by DROP NOT NULL.
class LargeUserStatusNotNull < ActiveRecord::Migration[6.1]
  include SafeBackfill::Migration
  disable_ddl_transaction!

  def change
    safe_set_not_null :large_user, :status
    safe_set_not_null :large_user, :email_lower
  end
end
