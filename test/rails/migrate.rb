# Runs ActiveRecord migrations the way "rails db:migrate" does, without a
# Rails application: an ActiveRecord::MigrationContext over one directory of
# migration files, on the database libpq's environment names (PGHOST,
# PGPORT, PGUSER, PGDATABASE).
#
#   ruby migrate.rb DIR migrate [VERSION]   up to VERSION (default: all)
#   ruby migrate.rb DIR rollback [STEPS]    back STEPS migrations (default 1)
#   ruby migrate.rb DIR up VERSION          only that migration, up
require "active_record"

# The helpers, as an application would keep them in lib/.
$LOAD_PATH.unshift File.expand_path("../../contrib/rails", __dir__)

dir, command, arg = ARGV
$stdout.sync = true
ActiveRecord::Base.establish_connection(adapter: "postgresql", database: ENV.fetch("PGDATABASE"))
ActiveRecord::Migration.verbose = true

# ActiveRecord 6.0-7.0 take the schema_migration model, 7.1+ find it.
context =
  if ActiveRecord::MigrationContext.instance_method(:initialize).arity == 1
    ActiveRecord::MigrationContext.new([dir])
  else
    ActiveRecord::MigrationContext.new([dir], ActiveRecord::SchemaMigration)
  end

begin
  case command
  when "migrate" then context.migrate(arg && Integer(arg))
  when "rollback" then context.rollback(arg ? Integer(arg) : 1)
  when "up" then context.run(:up, Integer(arg))
  else abort "usage: migrate.rb DIR migrate [VERSION] | rollback [STEPS] | up VERSION"
  end
rescue StandardError => e
  # As "rails db:migrate" reports it, without the backtrace.
  warn "#{e.class}: #{e.message}"
  warn "caused by #{e.cause.class}: #{e.cause.message}" if e.cause
  exit 1
end
puts "current version: #{context.current_version}"
