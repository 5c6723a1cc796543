# safe_backfill's value goes through the column's ActiveRecord type, as a
# model attribute's would: false, a Date, a Hash for jsonb, an Integer, and a
# "schema.table" name; and so do safe_update's constants in a set Hash (Arel
# nodes beside them, an Arel where), then safe_delete with an Arel where.
# Runs migration objects directly on their own table (typed_values, dropped
# at the end).  Prints TAP lines ("ok - ...").
require "active_record"
$LOAD_PATH.unshift File.expand_path("../../contrib/rails", __dir__)
require "safe_backfill"

ActiveRecord::Base.establish_connection(adapter: "postgresql", database: ENV.fetch("PGDATABASE"))
ActiveRecord::Migration.verbose = false
connection = ActiveRecord::Base.connection

class BackfillTypedValues < ActiveRecord::Migration[6.1]
  include SafeBackfill::Migration

  def up
    safe_backfill :typed_values, :flag, false
    safe_backfill :typed_values, :born, Date.new(2024, 2, 29)
    safe_backfill :typed_values, :meta, { "a" => [1, "it's"] }
    safe_backfill "public.typed_values", :n, 42
  end
end

class UpdateTypedValues < ActiveRecord::Migration[6.1]
  include SafeBackfill::Migration

  def up
    t = Arel::Table.new(:typed_values)
    safe_update :typed_values, { flag: true, born: Date.new(2025, 1, 31), meta: { "b" => "it's 100% \\ ok" },
                                 n: Arel.sql("n + 1") },
                where: t[:n].eq(42).and(t[:id].lteq(5)), batch_size: 2
    safe_delete "public.typed_values", t[:id].gt(8), batch_size: 2
  end
end

connection.execute("DROP TABLE IF EXISTS typed_values")
connection.execute("CREATE TABLE typed_values (id bigserial PRIMARY KEY, flag boolean, born date, meta jsonb, n integer)")
connection.execute("INSERT INTO typed_values SELECT FROM generate_series(1, 10)")
begin
  BackfillTypedValues.new.exec_migration(connection, :up)
  rows = connection.select_rows("SELECT flag::text, born::text, meta::text, n::text, count(*)::text " \
                                "FROM typed_values GROUP BY 1, 2, 3, 4")
  expected = [["false", "2024-02-29", '{"a": [1, "it\'s"]}', "42", "10"]]
  if rows == expected
    puts "ok - rails: values converted by the column's type (false, a Date, a Hash for jsonb, 42 into \"public.typed_values\") fill every row"
  else
    puts "not ok - rails: values converted by the column's type fill every row"
    puts "#   got #{rows.inspect}"
  end
rescue StandardError => e
  puts "not ok - rails: values converted by the column's type fill every row"
  puts "#   #{e.class}: #{e.message}"
end
begin
  UpdateTypedValues.new.exec_migration(connection, :up)
  rows = connection.select_rows("SELECT flag::text, born::text, meta::text, n::text, count(*)::text " \
                                "FROM typed_values GROUP BY 1, 2, 3, 4 ORDER BY 5")
  expected = [["false", "2024-02-29", '{"a": [1, "it\'s"]}', "42", "3"],
              ["true", "2025-01-31", '{"b": "it\'s 100% \\\\ ok"}', "43", "5"]]
  if rows == expected
    puts "ok - rails: safe_update's set Hash (constants converted by the columns' types, Arel.sql) " \
         "with an Arel where updates rows 1-5; safe_delete with an Arel where deletes 9 and 10"
  else
    puts "not ok - rails: safe_update's set Hash and safe_delete change the rows they should"
    puts "#   got #{rows.inspect}"
  end
rescue StandardError => e
  puts "not ok - rails: safe_update's set Hash and safe_delete change the rows they should"
  puts "#   #{e.class}: #{e.message}"
ensure
  connection.execute("DROP TABLE IF EXISTS typed_values")
end
