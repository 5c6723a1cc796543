# New nullable columns: a catalog-only change, in the usual DDL transaction.
class AddStatusToLargeUser < ActiveRecord::Migration[6.1]
  def change
    add_column :large_user, :status, :text
    add_column :large_user, :email_lower, :text
  end
end
