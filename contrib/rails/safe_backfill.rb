# frozen_string_literal: true

# ActiveRecord migration helpers for the safe_backfill PostgreSQL extension.
#
#   require "safe_backfill"
#
#   class BackfillUserStatus < ActiveRecord::Migration[6.1]
#     include SafeBackfill::Migration
#     disable_ddl_transaction!      # required: the procedures commit as they go
#
#     def change
#       safe_backfill :large_user, :status, "active", batch_size: 10_000
#       safe_backfill :large_user, :email_lower, expression: "lower(email)"
#     end
#   end
#
#   class UserStatusNotNull < ActiveRecord::Migration[6.1]   # a later deploy
#     include SafeBackfill::Migration
#     disable_ddl_transaction!
#
#     def change
#       safe_set_not_null :large_user, :status
#     end
#   end
#
#   class FixOrderCurrency < ActiveRecord::Migration[6.1]     # other data migrations
#     include SafeBackfill::Migration
#     disable_ddl_transaction!
#
#     def up
#       orders = Arel::Table.new(:orders)
#       safe_update :orders, { currency: "EUR" }, where: orders[:currency].eq("eur")
#       safe_delete :events, "created_at < now() - interval '90 days'"
#     end
#
#     def down; end                  # or raise ActiveRecord::IrreversibleMigration
#   end
#
# safe_backfill runs CALL safe_backfill(...): the NULLs of the column are
# filled batch by batch, each batch committed on its own, so other sessions
# keep reading and writing the table.  safe_set_not_null runs CALL
# safe_set_not_null(...): CHECK (col IS NOT NULL) NOT VALID, VALIDATE, then
# SET NOT NULL, which PostgreSQL proves from the validated check without a
# scan under ACCESS EXCLUSIVE.  safe_update and safe_delete run CALL
# safe_update(...) / CALL safe_delete(...): the rows that match where: are
# updated or deleted batch by batch, each batch committed on its own.
#
# These procedures COMMIT as they go, which PostgreSQL allows only outside a
# transaction block, and ActiveRecord runs each migration in a transaction
# unless it says disable_ddl_transaction!.  So the helpers refuse, before
# anything is sent, with SafeBackfill::TransactionError when a transaction is
# open (connection.transaction_open?): the migration lacks
# disable_ddl_transaction!, or the call is inside a transaction block.
#
# The table goes in quoted by connection.quote_table_name ("schema.table" is
# understood) and cast to regclass, the column as a name, the value as a
# bind parameter converted by the column's ActiveRecord type (as a model
# attribute would be), an expression, a set list and a where as SQL text
# parameters: nothing is glued into the CALL.  The extension's NOTICEs
# (progress lines, summary) are printed to the migration's output as they
# arrive (ruby-pg's notice receiver).
#
# Detached runs (two deploys): safe_backfill ..., detached: true queues the
# run (SELECT safe_backfill_start(...)), which a background worker of the
# server runs once the migration's transaction commits: it needs no
# disable_ddl_transaction!, and the migration returns at once.  A later
# migration waits for it with ensure_backfill_finished :table, :column
# (CALL safe_backfill_wait, which needs disable_ddl_transaction!) before
# safe_set_not_null.
#
# Reversing (in `change`, or with rails db:rollback): safe_backfill writes
# nothing back, the values stay (reversing the migration that added the
# column drops them); safe_set_not_null, and safe_backfill with
# set_not_null: true, run change_column_null(table, column, true), i.e.
# DROP NOT NULL, a catalog-only change.  safe_update in `change` is reversed
# only by the reverse: { set:, where: } it is given (another safe_update), and
# raises ActiveRecord::IrreversibleMigration without one; safe_delete in
# `change` always raises it (the rows are gone).  In up/down migrations
# each runs where it is called.
#
# Requires the safe_backfill extension in the database
# (enable_extension "safe_backfill" in an earlier migration).  Copy this file
# into your application's lib/ directory.
module SafeBackfill
  # The CALL would run inside a transaction block; nothing was sent.
  class TransactionError < StandardError; end

  # ensure_backfill_finished found no detached run of the column.
  class NoRunError < StandardError; end

  module Migration
    # Fill the NULLs of table.column in batches of batch_size rows, each
    # committed on its own (CALL safe_backfill), with either
    #
    #   value       a constant, converted by the column's ActiveRecord type
    #               (a Date, a Hash for json, true, ...) and sent as a bind
    #               parameter; the extension checks it against the column's
    #               type before any row is written; or
    #   expression: SQL text ("lower(email)") or an Arel node
    #               (Arel::Table.new(:large_user)[:email].lower), computed
    #               for each row from its own columns and sent as one text
    #               parameter; the extension parses it as exactly one
    #               expression and checks its type before any row is written.
    #
    # pause_ms:, target_batch_ms:, max_replica_lag: ("10s"), workers: and
    # resume: are passed to the procedure only when given.  set_not_null:
    # true makes the column NOT NULL after the last batch, as
    # safe_set_not_null does.  Needs disable_ddl_transaction!.
    #
    # detached: true queues a detached run instead (SELECT
    # safe_backfill_start(...)), fine inside the migration's transaction (no
    # disable_ddl_transaction! needed): a background worker of the server
    # runs it once that transaction commits, and the migration goes on at
    # once, saying "detached run N queued".  Wait for it in a later migration
    # with ensure_backfill_finished.  It does not take set_not_null: true.
    def safe_backfill(table, column, value = nil, expression: nil, batch_size: 10_000,
                      pause_ms: nil, target_batch_ms: nil, max_replica_lag: nil,
                      workers: nil, resume: nil, set_not_null: false, detached: false)
      if detached && set_not_null
        raise ArgumentError, "safe_backfill: detached: true does not take set_not_null: true: " \
                             "the migration would not wait for the NOT NULL. Make the column " \
                             "NOT NULL in a later migration, after ensure_backfill_finished, " \
                             "with safe_set_not_null"
      end
      if value.nil? == expression.nil?
        raise ArgumentError, "safe_backfill takes exactly one of a value (a constant other " \
                             "than nil) and expression: (SQL text or an Arel node)"
      end
      SafeBackfill.check_batch_size(batch_size)

      reversible do |dir|
        dir.up do
          run = detached ? :start_detached : :call_procedure
          SafeBackfill.public_send(run, self, "safe_backfill", table, column) do |args|
            if expression.nil?
              args.add("value", value, SafeBackfill.column_type(connection, table, column))
            else
              args.add("expression", SafeBackfill.expression_sql(expression), nil, "text")
            end
            args.add_batching(batch_size: batch_size, pause_ms: pause_ms,
                              target_batch_ms: target_batch_ms, max_replica_lag: max_replica_lag,
                              workers: workers, resume: resume)
            args.add("set_not_null", true, nil, "bool") if set_not_null
          end
        end
        # The values stay: which rows were NULL before is not known.
        dir.down { change_column_null(table, column, true) if set_not_null }
      end
    end

    # UPDATE the rows of table that match where: in batches of batch_size
    # rows (walked by primary key), each committed on its own (CALL
    # safe_update):
    #
    #   set     what to set: a Hash { column => value }, each value a constant
    #           converted by the column's ActiveRecord type and quoted by the
    #           connection ("EUR", a Date, a Hash for jsonb, nil) or an Arel
    #           node computed for each row from its own columns
    #           (orders[:price] * 100); or SQL text, what follows SET
    #           ("currency = 'EUR'").
    #   where:  the rows to update: an Arel node (orders[:currency].eq("eur"))
    #           or SQL text; nil updates every row.
    #
    # Both go to the procedure as SQL text parameters; the extension parses
    # them against the table and refuses anything else before any row
    # changes.  pause_ms:, target_batch_ms:, max_replica_lag:, workers:,
    # resume: and dry_run: (count the matching rows, change nothing) are
    # passed only when given.  Needs disable_ddl_transaction!.
    #
    # In `change`, rolling back runs reverse: { set: ..., where: ... } (a
    # safe_update with the same options) when given, and raises
    # ActiveRecord::IrreversibleMigration otherwise: the old values are not
    # kept.
    def safe_update(table, set, where: nil, batch_size: 10_000, pause_ms: nil,
                    target_batch_ms: nil, max_replica_lag: nil, workers: nil, resume: nil,
                    dry_run: nil, reverse: nil)
      SafeBackfill.check_batch_size(batch_size)
      SafeBackfill.check_reverse(table, reverse)
      batching = { batch_size: batch_size, pause_ms: pause_ms, target_batch_ms: target_batch_ms,
                   max_replica_lag: max_replica_lag, workers: workers, resume: resume,
                   dry_run: dry_run }
      reversible do |dir|
        dir.up { SafeBackfill.change_rows(self, "safe_update", table, set, where, batching) }
        dir.down do
          if reverse.nil?
            raise ActiveRecord::IrreversibleMigration,
                  "safe_update(#{table}) cannot be reversed: the values it replaced were not " \
                  "kept. Give it reverse: { set: ..., where: ... } (the safe_update that sets " \
                  "them back), or write up and down methods."
          end
          SafeBackfill.change_rows(self, "safe_update", table, reverse[:set], reverse[:where], batching)
        end
      end
    end

    # DELETE the rows of table that match where (an Arel node or SQL text;
    # required: TRUNCATE deletes every row) in batches of batch_size rows,
    # each committed on its own (CALL safe_delete), with the options of
    # safe_update.  Needs disable_ddl_transaction!.  Not reversible: in
    # `change`, rolling back raises ActiveRecord::IrreversibleMigration.
    def safe_delete(table, where, batch_size: 10_000, pause_ms: nil, target_batch_ms: nil,
                    max_replica_lag: nil, workers: nil, resume: nil, dry_run: nil)
      if where.nil?
        raise ArgumentError, "safe_delete(#{table}) needs a where (the rows to delete); to " \
                             "delete every row use TRUNCATE"
      end
      SafeBackfill.check_batch_size(batch_size)
      batching = { batch_size: batch_size, pause_ms: pause_ms, target_batch_ms: target_batch_ms,
                   max_replica_lag: max_replica_lag, workers: workers, resume: resume,
                   dry_run: dry_run }
      reversible do |dir|
        dir.up { SafeBackfill.change_rows(self, "safe_delete", table, nil, where, batching) }
        dir.down do
          raise ActiveRecord::IrreversibleMigration,
                "safe_delete(#{table}) cannot be reversed: the rows it deleted are gone."
        end
      end
    end

    # Wait for the latest detached run of table.column (safe_backfill ...,
    # detached: true in an earlier migration), found by the table's OID and
    # the column's number (safe_backfill_detached_run): CALL
    # safe_backfill_wait(id, timeout), which relays the run's progress and
    # fails the migration with the run's own error if it failed or was
    # cancelled, or when timeout: ("30 min"; nil: no limit) passes first.  No
    # detached run of the column is an error too (SafeBackfill::NoRunError):
    # the migration that queues it was not applied here.  Needs
    # disable_ddl_transaction! (the wait commits between looks).  Reversing
    # it does nothing.
    def ensure_backfill_finished(table, column, timeout: nil)
      reversible do |dir|
        dir.up do
          SafeBackfill.call_procedure(self, "safe_backfill_wait", table, column) do |args|
            run = SafeBackfill.detached_run(connection, table, column)
            args.replace("job_id", run, "int8")
            args.add("timeout", timeout, nil, "interval")
          end
        end
      end
    end

    # Make table.column NOT NULL without a scan under ACCESS EXCLUSIVE
    # (CALL safe_set_not_null).  drop_check: (nil: drop the helper CHECK only
    # if the procedure added it; true: always; false: never), lock_timeout:
    # ("5s", per attempt at an ACCESS EXCLUSIVE step) and max_attempts: are
    # passed only when given; otherwise the GUCs safe_backfill.lock_timeout
    # and safe_backfill.max_lock_attempts apply.  Needs
    # disable_ddl_transaction!.  Reversed by DROP NOT NULL.
    def safe_set_not_null(table, column, drop_check: nil, lock_timeout: nil, max_attempts: nil)
      reversible do |dir|
        dir.up do
          SafeBackfill.call_procedure(self, "safe_set_not_null", table, column) do |args|
            args.add("drop_check", drop_check, nil, "bool")
            args.add("lock_timeout", lock_timeout, nil, "interval")
            args.add("max_attempts", max_attempts, nil, "int4")
          end
        end
        dir.down { change_column_null(table, column, true) }
      end
    end
  end

  # The named arguments of one CALL, each a bind parameter ($1, $2, ...).
  class Arguments
    attr_reader :sql, :binds

    def initialize
      @sql = []
      @binds = []
    end

    # Add `name => $n[::sql_type]` unless value is nil; type: the
    # ActiveRecord type that converts value for the database.
    def add(name, value, type = nil, sql_type = nil)
      return if value.nil?

      type ||= ActiveRecord::Type::Value.new
      @binds << ActiveRecord::Relation::QueryAttribute.new(name, value, type)
      cast = sql_type ? "::pg_catalog.#{sql_type}" : ""
      @sql << "#{name} => $#{@binds.size}#{cast}"
    end

    # The batching arguments safe_backfill, safe_update and safe_delete share.
    def add_batching(batch_size:, pause_ms:, target_batch_ms:, max_replica_lag:, workers:,
                     resume:, dry_run: nil)
      add("batch_size", batch_size, nil, "int4")
      add("pause_ms", pause_ms, nil, "int4")
      add("target_batch_ms", target_batch_ms, nil, "int4")
      add("max_replica_lag", max_replica_lag, nil, "interval")
      add("workers", workers, nil, "int4")
      add("resume", resume, nil, "bool")
      add("dry_run", dry_run, nil, "bool")
    end

    # Only name => value (for safe_backfill_wait, which takes no tbl, col).
    def replace(name, value, sql_type)
      @sql = []
      @binds = []
      add(name, value, nil, sql_type)
    end
  end

  QUIETER_THAN_NOTICE = %w[warning error log fatal panic].freeze
  WHY = "CALL %s commits as it goes, which PostgreSQL allows only outside a transaction block"

  class << self
    # Run CALL procedure(tbl => ..., col => ..., <what the block adds>) on the
    # migration's connection, outside any transaction, printing NOTICEs.
    # Without a column (safe_update, safe_delete), tbl => ... only.
    def call_procedure(migration, procedure, table, column = nil)
      connection = migration.connection
      target = column.nil? ? table.to_s : "#{table}.#{column}"
      require_no_transaction(connection, procedure, target)
      args = Arguments.new
      args.add("tbl", connection.quote_table_name(table), nil, "regclass")
      args.add("col", column.to_s, nil, "name") unless column.nil?
      yield args
      sql = "CALL #{procedure}(#{args.sql.join(', ')})"
      label = column.nil? ? table.inspect : "#{table.inspect}, #{column.inspect}"
      migration.say_with_time("#{procedure}(#{label})") do
        showing_notices(migration, connection) do
          connection.exec_query(sql, procedure, args.binds)
        rescue ActiveRecord::StatementInvalid => e
          raise unless sqlstate(e) == "2D000"

          raise TransactionError, "#{procedure}(#{target}) ran inside a transaction block " \
                                  "(SQLSTATE 2D000): #{format(WHY, procedure)}. Add " \
                                  "disable_ddl_transaction! to the migration. Nothing was changed."
        end
        nil
      end
    end

    # CALL safe_update(tbl, set, "where", ...) or CALL safe_delete(tbl,
    # "where", ...) (set nil) on the migration's connection.
    def change_rows(migration, procedure, table, set, where, batching)
      call_procedure(migration, procedure, table) do |args|
        connection = migration.connection
        args.add("set", set_list_sql(connection, table, set), nil, "text") unless set.nil?
        args.add('"where"', expression_sql(where, connection, "#{procedure}: where:"), nil, "text") unless where.nil?
        args.add_batching(**batching)
      end
    end

    def check_batch_size(batch_size)
      return if batch_size.is_a?(Integer) && batch_size >= 1

      raise ArgumentError, "batch_size must be a positive integer, not #{batch_size.inspect}"
    end

    def check_reverse(table, reverse)
      return if reverse.nil? || (reverse.is_a?(Hash) && !reverse[:set].nil? &&
                                 (reverse.keys - %i[set where]).empty?)

      raise ArgumentError, "safe_update(#{table}): reverse: must be { set: ..., where: ... } " \
                           "(where: optional), not #{reverse.inspect}"
    end

    # SQL text of a set list: a String as written, or a Hash { column =>
    # value } compiled against the table: each column quoted, each value an
    # Arel node's SQL (or Arel.sql's text) or a constant converted by the
    # column's ActiveRecord type and quoted by the connection.
    def set_list_sql(connection, table, set)
      return set.to_s if set.is_a?(String)
      unless set.is_a?(Hash) && !set.empty?
        raise ArgumentError, "safe_update(#{table}): set #{set.inspect} is neither SQL text nor " \
                             "a non-empty Hash { column => value }"
      end

      set.map do |column, value|
        sql = if arel?(value)
                expression_sql(value, connection, "safe_update: set[#{column.inspect}]")
              else
                connection.quote(column_type(connection, table, column).serialize(value))
              end
        "#{connection.quote_column_name(column)} = #{sql}"
      end.join(", ")
    end

    # An Arel node or attribute, or Arel.sql("...") (a String, but SQL, not
    # a value to quote).
    def arel?(value)
      value.is_a?(Arel::Nodes::Node) || value.is_a?(Arel::Attributes::Attribute) ||
        value.is_a?(Arel::Nodes::SqlLiteral)
    end

    # SELECT safe_backfill_start(tbl => ..., col => ..., <what the block
    # adds>) on the migration's connection, in its transaction if it has one.
    def start_detached(migration, _procedure, table, column)
      connection = migration.connection
      target = "#{table}.#{column}"
      require_postgresql(connection, "safe_backfill_start", target)
      args = Arguments.new
      args.add("tbl", connection.quote_table_name(table), nil, "regclass")
      args.add("col", column.to_s, nil, "name")
      yield args
      sql = "SELECT safe_backfill_start(#{args.sql.join(', ')})"
      migration.say_with_time("safe_backfill_start(#{table.inspect}, #{column.inspect})") do
        run = connection.exec_query(sql, "safe_backfill_start", args.binds).rows.first.first
        migration.say("safe_backfill: detached run #{run} queued for #{target}; a background " \
                      "worker runs it once this migration's transaction commits. Wait for it " \
                      "in a later migration: ensure_backfill_finished", true)
        nil
      end
    end

    # The id of the latest detached run of table.column this role may see.
    def detached_run(connection, table, column)
      binds = [ActiveRecord::Relation::QueryAttribute.new("tbl", connection.quote_table_name(table),
                                                          ActiveRecord::Type::Value.new),
               ActiveRecord::Relation::QueryAttribute.new("col", column.to_s,
                                                          ActiveRecord::Type::Value.new)]
      run = connection.exec_query("SELECT safe_backfill_detached_run($1::pg_catalog.regclass, " \
                                  "$2::pg_catalog.name)", "safe_backfill_detached_run",
                                  binds).rows.first.first
      return run unless run.nil?

      raise NoRunError, "ensure_backfill_finished(#{table}.#{column}): no detached run of this " \
                        "column was found in safe_backfill_progress: run the migration with " \
                        "safe_backfill ..., detached: true first"
    end

    def require_postgresql(connection, procedure, target)
      return if connection.adapter_name.match?(/postg/i)

      raise TransactionError, "#{procedure}(#{target}) needs PostgreSQL with the " \
                              "safe_backfill extension, not #{connection.adapter_name}."
    end

    # Refuse before anything is sent: inside a transaction the CALL would
    # fail anyway (SQLSTATE 2D000), but this says what to change.
    def require_no_transaction(connection, procedure, target)
      require_postgresql(connection, procedure, target)
      return unless connection.transaction_open?

      raise TransactionError, "#{procedure}(#{target}) cannot run in a transaction: " \
                              "#{format(WHY, procedure)}, and the migration runs in one. " \
                              "Add disable_ddl_transaction! to the migration class (and " \
                              "call it outside any transaction block); its other statements " \
                              "then run without a surrounding transaction, each on its own. " \
                              "Nothing was changed."
    end

    # The ActiveRecord type of table.column, which converts a Ruby value as a
    # model attribute of that column would; a plain Value when unknown (the
    # extension then reports the missing column).
    def column_type(connection, table, column)
      found = connection.columns(table).find { |c| c.name == column.to_s }
      found ? connection.lookup_cast_type_from_column(found) : ActiveRecord::Type::Value.new
    end

    # SQL text of an expression: a String as written, an Arel node (or
    # attribute) compiled by the connection's Arel visitor (values quoted by
    # the connection).
    def expression_sql(expression, connection = nil, what = "safe_backfill: expression:")
      return expression.to_s if expression.is_a?(String)
      return (connection || ActiveRecord::Base.connection).visitor.compile(expression) if arel?(expression)
      return expression.to_sql if expression.respond_to?(:to_sql) && !expression.is_a?(ActiveRecord::Relation)

      raise ArgumentError, "#{what} #{expression.inspect} is neither SQL text nor an Arel node"
    end

    # ruby-pg hands every NOTICE to the notice receiver while the result is
    # read (the CALL is still running), so progress lines show up live.
    # ActiveRecord sets client_min_messages to warning on its connections
    # (the min_messages setting): NOTICE is let through for the CALL only.
    def showing_notices(migration, connection)
      raw = connection.raw_connection
      return yield unless raw.respond_to?(:set_notice_receiver)

      previous = raw.set_notice_receiver do |result|
        result.error_message.to_s.each_line { |line| migration.say(line.chomp, true) }
      end
      min_messages = connection.client_min_messages
      connection.client_min_messages = "notice" if QUIETER_THAN_NOTICE.include?(min_messages)
      begin
        yield
      ensure
        restore_min_messages(connection, min_messages)
        if previous
          raw.set_notice_receiver(&previous)
        else
          raw.set_notice_receiver
        end
      end
    end

    # After an error inside a transaction block the SET cannot run, and must
    # not hide that error: the rollback undoes the earlier SET anyway.
    def restore_min_messages(connection, min_messages)
      connection.client_min_messages = min_messages
    rescue ActiveRecord::StatementInvalid
      nil
    end

    def sqlstate(error)
      cause = error.cause
      cause.respond_to?(:result) && cause.result ? cause.result.error_field(PG::PG_DIAG_SQLSTATE) : nil
    end
  end
end
