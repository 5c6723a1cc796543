require "safe_backfill"

# change_user: price_cents recomputed where it is wrong (an Arel node as the
# value, SQL text as where), spam rows deleted (an Arel node as where).  Each
# batch commits on its own.  Not reversible: rolling back raises
# ActiveRecord::IrreversibleMigration.
class ChangeUserRows < ActiveRecord::Migration[6.1]
  include SafeBackfill::Migration
  disable_ddl_transaction!

  BATCH_SIZE = Integer(ENV.fetch("SAFE_BACKFILL_CHANGE_BATCH_SIZE", "500"))

  def change
    users = Arel::Table.new(:change_user)
    safe_update :change_user,
                { price_cents: Arel::Nodes::NamedFunction.new("CAST", [(users[:price] * 100).as("integer")]) },
                where: "price_cents IS DISTINCT FROM (price * 100)::int", batch_size: BATCH_SIZE
    safe_delete :change_user, users[:kind].eq("spam").and(users[:price].gt(10)), batch_size: BATCH_SIZE
  end
end
