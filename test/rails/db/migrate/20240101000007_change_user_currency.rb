require "safe_backfill"

# change_user: currency 'eur' written 'EUR', with a note (constants converted
# by the columns' types; a quote, % and a backslash in one), where an Arel
# node.  The note marks the rows it changed (note is NULL before), which is
# what lets reverse: set them back on rollback.
class ChangeUserCurrency < ActiveRecord::Migration[6.1]
  include SafeBackfill::Migration
  disable_ddl_transaction!

  BATCH_SIZE = Integer(ENV.fetch("SAFE_BACKFILL_CHANGE_BATCH_SIZE", "500"))
  NOTE = "it's 100% \\ ok"

  def change
    users = Arel::Table.new(:change_user)
    safe_update :change_user, { currency: "EUR", note: NOTE }, where: users[:currency].eq("eur"),
                batch_size: BATCH_SIZE,
                reverse: { set: { currency: "eur", note: nil }, where: users[:note].eq(NOTE) }
  end
end
