"""
Alembic helpers for the safe_backfill PostgreSQL extension.

    import sqlalchemy as sa
    from alembic import op
    from safe_backfill_alembic import safe_backfill, safe_set_not_null

    def upgrade():
        safe_backfill(op, "large_user", "status", "active", batch_size=10000)
        safe_backfill(op, "large_user", "email_lower",
                      expression=sa.func.lower(sa.column("email")))

    def upgrade():          # a later migration (a later deploy)
        safe_set_not_null(op, "large_user", "status")

    def downgrade():
        op.alter_column("large_user", "status", nullable=True)

    def upgrade():          # other data migrations, batch by batch
        safe_update(op, "orders", {"currency": "EUR"},
                    where=sa.column("currency") == "eur")
        safe_delete(op, "events", "created_at < now() - interval '90 days'")

    def downgrade():        # nothing to undo with: say so
        print("the rows updated and deleted by this revision stay as they are")

Detached runs (two deploys): safe_backfill(op, ..., detached=True) queues
the run (SELECT safe_backfill_start(...), fine inside the migration's
transaction; a background worker of the server runs it once that
transaction commits) and returns at once; a later migration waits for it
with ensure_backfill_finished(op, table, column) before safe_set_not_null.

safe_backfill runs CALL safe_backfill(...): the NULLs of the column are
filled batch by batch, each batch committed on its own, so other sessions
keep reading and writing the table.  safe_set_not_null runs CALL
safe_set_not_null(...): CHECK (col IS NOT NULL) NOT VALID, VALIDATE, then SET
NOT NULL, which PostgreSQL proves from the validated check without a scan
under ACCESS EXCLUSIVE.  safe_update and safe_delete run CALL safe_update(...)
/ CALL safe_delete(...): the rows that match `where` are updated or deleted
batch by batch, each batch committed on its own.

These procedures COMMIT as they go, which PostgreSQL allows only outside a
transaction block, and Alembic runs migrations in a transaction.  So the
helpers run their CALL in op.get_context().autocommit_block(): the
migration's transaction is committed before it and a new one begun after it.
They refuse, before anything is sent, when that would be wrong or
impossible:

  * offline mode (alembic upgrade --sql): the CALL cannot be written into a
    script that is run in one transaction, and its values would have to be
    glued into SQL text;
  * the migration's transaction has already changed something (an operation
    before the helper in the same migration, or earlier migrations with
    transaction_per_migration=False): autocommit_block would commit that
    work in the middle of the run, and a failed backfill would leave the
    operations before it applied without their version recorded.  Put the helper in a migration of its own, first
    in upgrade(), with context.configure(..., transaction_per_migration=True)
    in env.py;
  * env.py began a transaction of its own (connection.begin()) around
    run_migrations(), which Alembic cannot end.

The table is passed as a quoted name ('"schema"."table"', cast to regclass),
the column as a name, the value as a query parameter and an expression as
one SQL text parameter: nothing is glued into the SQL.  The extension's
NOTICEs (progress lines, summary) are printed to the migration's output as
they arrive (psycopg2).

Requires the safe_backfill extension in the database (CREATE EXTENSION
safe_backfill, e.g. op.execute("CREATE EXTENSION IF NOT EXISTS
safe_backfill") in an earlier migration).  Copy this file next to your
env.py (or put contrib/alembic on sys.path).
"""

import sys

import sqlalchemy as sa

__all__ = ["safe_backfill", "safe_set_not_null", "ensure_backfill_finished",
           "safe_update", "safe_delete", "compile_expression", "compile_set_list",
           "MigrationTransactionError", "UnsupportedExpressionError"]


class MigrationTransactionError(RuntimeError):
    """The CALL cannot run outside a transaction block here; nothing was sent."""


class UnsupportedExpressionError(ValueError):
    """An expression (expression=, a set value, where=) cannot be turned into SQL text."""


# ---------------------------------------------------------------------------
# where the CALL may run

_WHY_AUTOCOMMIT = ("CALL %s commits as it goes, which PostgreSQL allows only "
                   "outside a transaction block")


def _target(table_name, column_name, schema):
    return "%s.%s" % (table_name if schema is None else "%s.%s" % (schema, table_name),
                      column_name)


def _refuse(procedure, target, why):
    raise MigrationTransactionError(
        "%s(%s) cannot run here: %s, and %s. Nothing was changed."
        % (procedure, target, _WHY_AUTOCOMMIT % procedure, why))


def _transaction_has_written(connection):
    """
    True when the current transaction has an xid, i.e. has changed
    something (DDL, DML, a version stamp) that committing now would make
    permanent halfway through the migration run.
    """
    return connection.execute(sa.text(
        "SELECT pg_catalog.pg_current_xact_id_if_assigned() IS NOT NULL")).scalar()


def _require_online_postgresql(context, function, target):
    """A detached start runs in the migration's transaction, online only."""
    if context.as_sql:
        raise MigrationTransactionError(
            "%s(%s) cannot run here: Alembic is in offline mode (--sql), where "
            "the statements are written into a script, and the values would "
            "have to be glued into SQL text. Run this migration online. "
            "Nothing was changed." % (function, target))
    if context.bind.dialect.name != "postgresql":
        raise MigrationTransactionError(
            "%s(%s) needs PostgreSQL with the safe_backfill extension, not %s."
            % (function, target, context.bind.dialect.name))


def _require_autocommit_possible(context, procedure, target):
    """Refuse before anything is sent when autocommit_block would be wrong or impossible."""
    if context.as_sql:
        _refuse(procedure, target,
                "Alembic is in offline mode (--sql), where the statements are "
                "written into a script instead of run. Run this migration "
                "online (alembic upgrade without --sql); in a script for psql, "
                "write CALL %s(...) by hand, outside BEGIN/COMMIT" % procedure)
    connection = context.bind
    if connection.dialect.name != "postgresql":
        raise MigrationTransactionError(
            "%s(%s) needs PostgreSQL with the safe_backfill extension, not %s."
            % (procedure, target, connection.dialect.name))
    if not connection.in_transaction():
        return
    # Alembic's own transaction (context.begin_transaction()) is what
    # autocommit_block commits and begins again; one that env.py began
    # itself it cannot end.
    if getattr(context, "_transaction", None) is None:
        _refuse(procedure, target,
                "the migration runs in a transaction that env.py began itself "
                "(connection.begin() around context.run_migrations()), which "
                "Alembic cannot end. Use \"with context.begin_transaction():\" "
                "in env.py instead, with context.configure(..., "
                "transaction_per_migration=True)")
    if _transaction_has_written(connection):
        _refuse(procedure, target,
                "the migration's transaction has already changed something: an "
                "operation before this one in the same migration, or earlier "
                "migrations of this run (transaction_per_migration is off). "
                "autocommit_block() would commit that work now, in the middle "
                "of the run: if the CALL then failed, the operations "
                "before it would stay applied without their migration's "
                "version recorded. Put %s first in a migration of its own, "
                "and set context.configure(..., transaction_per_migration=True) "
                "in env.py" % procedure)


# ---------------------------------------------------------------------------
# NOTICEs to the migration's output

class _NoticePrinter:
    """
    Stands in for psycopg2's connection.notices list: every NOTICE is
    printed when it arrives instead of being kept (the list keeps only 50).
    """

    def __init__(self, stream):
        self.stream = stream

    def append(self, text):
        for line in text.rstrip("\n").splitlines():
            self.stream.write("    %s\n" % line)
        self.stream.flush()


def _dbapi_connection(connection):
    fairy = connection.connection
    return getattr(fairy, "dbapi_connection", None) or getattr(fairy, "connection", None)


def _execute_showing_notices(connection, sql, params, stream):
    """Run the CALL; print the server's NOTICEs as they arrive (psycopg2)."""
    raw = _dbapi_connection(connection)
    if raw is None or not hasattr(raw, "notices"):
        connection.execute(sa.text(sql), params)
        return
    # psycopg2 reads notices only when it polls the connection: a blocking
    # execute polls once, at the end; with a wait callback it polls all
    # along, so progress lines show up live (and Ctrl-C cancels the CALL;
    # the batches committed so far stay).
    import psycopg2.extensions
    import psycopg2.extras

    old_notices = raw.notices
    raw.notices = _NoticePrinter(stream)
    own_callback = psycopg2.extensions.get_wait_callback() is None
    if own_callback:
        psycopg2.extensions.set_wait_callback(psycopg2.extras.wait_select)
    try:
        connection.execute(sa.text(sql), params)
    finally:
        if own_callback:
            psycopg2.extensions.set_wait_callback(None)
        raw.notices = old_notices


def _sqlstate(exc):
    return getattr(getattr(exc, "orig", None), "pgcode", None)


def _call(op, procedure, target, sql, params, stream):
    """Run the CALL outside the migration's transaction (checked before)."""
    stream = stream or sys.stdout
    with op.get_context().autocommit_block():
        try:
            _execute_showing_notices(op.get_bind(), sql, params, stream)
        except sa.exc.DBAPIError as exc:
            if _sqlstate(exc) == "2D000":   # still in a transaction block somehow
                raise MigrationTransactionError(
                    "%s(%s) ran inside a transaction block (SQLSTATE 2D000): %s. "
                    "Run the migration with transaction_per_migration=True and "
                    "nothing before this operation in its migration. Nothing "
                    "was changed." % (procedure, target, _WHY_AUTOCOMMIT % procedure)) from exc
            raise


# ---------------------------------------------------------------------------
# arguments

def _quoted_table(op, table_name, schema):
    """'"schema"."table"' (or '"table"', found through search_path), for regclass."""
    preparer = op.get_bind().dialect.identifier_preparer
    quoted = preparer.quote_identifier(table_name)
    if schema is not None:
        quoted = "%s.%s" % (preparer.quote_identifier(schema), quoted)
    return quoted


def compile_expression(expression, dialect, what="safe_backfill: expression"):
    """
    One SQL expression text for CALL safe_backfill(..., expression => ...)
    (and for safe_update's set values and where=, safe_delete's where=):
    a SQLAlchemy column expression (sa.func.lower(sa.column("email")),
    sa.case(...), sa.cast(...), arithmetic, a comparison, sa.text("..."))
    compiled for `dialect` (the connection's PostgreSQL dialect) with its
    bound values rendered as literals; a str is taken as written.  `what`
    names the argument in the errors.
    """
    if isinstance(expression, str):
        return expression
    if not isinstance(expression, sa.sql.ClauseElement):
        raise UnsupportedExpressionError(
            "%s=%r is neither a SQLAlchemy expression nor SQL text"
            % (what, expression))
    try:
        text = str(expression.compile(dialect=dialect,
                                      compile_kwargs={"literal_binds": True}))
    except sa.exc.CompileError as exc:
        raise UnsupportedExpressionError(
            "%s %s cannot be written as SQL text with its "
            "values inline: %s. Write such a value as a string and cast it, e.g. "
            "sa.cast(sa.literal(\"2024-01-01\"), sa.Date), or pass SQL text. "
            "Nothing was changed." % (what, expression, exc)) from exc
    # A format/pyformat driver's compiler writes every % as %%, which the
    # driver turns back into % when it runs a statement with parameters;
    # this text is one parameter's value, so undo it the same way.
    if dialect.paramstyle in ("format", "pyformat"):
        text = text.replace("%%", "%")
    return text


def _column_name(column, what):
    """A set mapping's key: a column name, or a SQLAlchemy column (its .name)."""
    if isinstance(column, str):
        return column
    if hasattr(column, "__clause_element__"):   # an ORM attribute (Order.currency)
        column = column.__clause_element__()
    name = getattr(column, "name", None)
    if isinstance(column, sa.sql.ClauseElement) and isinstance(name, str):
        return name
    raise UnsupportedExpressionError(
        "%s: %r is neither a column name nor a SQLAlchemy column" % (what, column))


def compile_set_list(values, dialect, what="safe_update: values"):
    """
    The set text for CALL safe_update(..., set => ...): what follows SET in
    an UPDATE.  `values` is either SQL text ("currency = 'EUR'", a str or
    sa.text()) taken as written, or a mapping {column: value} where a column
    is a name (or a SQLAlchemy column) and a value is a SQLAlchemy expression
    computed for each row (sa.column("price") * 100) or a constant (a str,
    number, bool, None), each compiled for `dialect` with its values inline:
    {"currency": "EUR", "price_cents": sa.cast(sa.column("price") * 100, sa.Integer)}
    gives currency = 'EUR', price_cents = CAST(price * 100 AS INTEGER).  The
    extension parses the text as a set list of the table and coerces each
    value to its column's type, as an UPDATE would.
    """
    if isinstance(values, (str, sa.sql.elements.TextClause)):
        return compile_expression(values, dialect, what)
    if not hasattr(values, "items"):
        raise UnsupportedExpressionError(
            "%s=%r is neither SQL text nor a mapping {column: value}" % (what, values))
    if not values:
        raise ValueError("%s is empty: give at least one column to set" % what)
    quote = dialect.identifier_preparer.quote_identifier
    assignments = []
    for column, value in values.items():
        name = _column_name(column, what)
        if value is None:
            value = sa.null()
        elif not isinstance(value, sa.sql.ClauseElement):
            value = sa.literal(value)
        assignments.append("%s = %s" % (quote(name),
                                        compile_expression(value, dialect, "%s[%r]" % (what, name))))
    return ", ".join(assignments)


def _optional_args(args, params, optional):
    """name => CAST(:name AS type) for each (name, value, type) given (not None)."""
    for name, given, sql_type in optional:
        if given is not None:
            args.append("%s => CAST(:%s AS %s)" % (name, name, sql_type))
            params[name] = given


def _batch_args(args, params, batch_size, pause_ms, target_batch_ms, max_replica_lag,
                workers, resume, dry_run=None):
    """The batching arguments safe_backfill, safe_update and safe_delete share."""
    args.append("batch_size => :batch_size")
    params["batch_size"] = batch_size
    _optional_args(args, params, [("pause_ms", pause_ms, "pg_catalog.int4"),
                                  ("target_batch_ms", target_batch_ms, "pg_catalog.int4"),
                                  ("max_replica_lag", max_replica_lag, "pg_catalog.interval"),
                                  ("workers", workers, "pg_catalog.int4"),
                                  ("resume", resume, "pg_catalog.bool"),
                                  ("dry_run", dry_run, "pg_catalog.bool")])


def _positive_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError("%s must be an integer >= %d, not %r" % (name, minimum, value))


# ---------------------------------------------------------------------------
# the helpers

def safe_backfill(op, table_name, column_name, value=None, *, expression=None,
                  schema=None, batch_size=10000, pause_ms=None,
                  target_batch_ms=None, max_replica_lag=None, workers=None,
                  resume=None, set_not_null=False, detached=False, stream=None):
    """
    Fill the NULLs of table_name.column_name in batches of batch_size rows,
    each committed on its own (CALL safe_backfill), with either

      value       a constant, sent as a query parameter (a str is read by
                  the column type's input function, like a literal in an
                  UPDATE); the extension checks it against the column's type
                  before any row is written; or
      expression  a SQLAlchemy column expression computed for each row from
                  its own columns (sa.func.lower(sa.column("email"))),
                  compiled for PostgreSQL with its values inline and sent as
                  one text parameter; or SQL text (str or sa.text()).  The
                  extension parses it as exactly one expression and checks
                  its type before any row is written.

    pause_ms, target_batch_ms, max_replica_lag (e.g. "10s"), workers and
    resume are passed to the procedure only when given.  set_not_null=True
    makes the column NOT NULL after the last batch, as safe_set_not_null
    does.  NOTICEs go to `stream` (default sys.stdout).

    Runs in op.get_context().autocommit_block(); refuses with
    MigrationTransactionError in offline mode or when the migration's
    transaction already changed something (see the module's doc).

    detached=True queues a detached run instead (SELECT
    safe_backfill_start(...)), inside the migration's transaction (after
    other operations too): a background worker of the server runs it once
    that transaction commits, and the migration returns at once, printing
    "detached run N queued".  Wait for it in a later migration with
    ensure_backfill_finished().  It does not take set_not_null=True: make
    the column NOT NULL after the wait, with safe_set_not_null.  Returns
    the run's id (None without detached).
    """
    if (value is None) == (expression is None):
        raise ValueError(
            "safe_backfill takes exactly one of value= (a constant other than "
            "None) and expression= (a SQLAlchemy expression or SQL text)")
    _positive_int("batch_size", batch_size, 1)
    target = _target(table_name, column_name, schema)
    if detached and set_not_null:
        raise ValueError(
            "safe_backfill: detached=True does not take set_not_null=True: the "
            "migration would not wait for the NOT NULL. Make the column NOT NULL "
            "in a later migration, after ensure_backfill_finished(), with "
            "safe_set_not_null")
    if detached:
        _require_online_postgresql(op.get_context(), "safe_backfill_start", target)
    else:
        _require_autocommit_possible(op.get_context(), "safe_backfill", target)
    args = ["tbl => CAST(:tbl AS pg_catalog.regclass)",
            "col => CAST(:col AS pg_catalog.name)"]
    params = {"tbl": _quoted_table(op, table_name, schema), "col": column_name}
    if expression is not None:
        args.append("expression => CAST(:expression AS pg_catalog.text)")
        params["expression"] = compile_expression(expression, op.get_bind().dialect)
    else:
        args.append("value => :value")
        params["value"] = value
    _batch_args(args, params, batch_size, pause_ms, target_batch_ms, max_replica_lag,
                workers, resume)
    if set_not_null:
        _optional_args(args, params, [("set_not_null", True, "pg_catalog.bool")])
    if detached:
        return _start_detached(op, target, "SELECT safe_backfill_start(%s)" % ", ".join(args),
                               params, stream)
    _call(op, "safe_backfill", target,
          "CALL safe_backfill(%s)" % ", ".join(args), params, stream)
    return None


def _table_target(table_name, schema):
    return table_name if schema is None else "%s.%s" % (schema, table_name)


def safe_update(op, table_name, values, where=None, *, schema=None, batch_size=10000,
                pause_ms=None, target_batch_ms=None, max_replica_lag=None,
                workers=None, resume=None, dry_run=None, stream=None):
    """
    UPDATE the rows of table_name that match `where` in batches of
    batch_size rows (walked by primary key), each committed on its own
    (CALL safe_update):

      values   what to set: a mapping {column: value}, each value a constant
               (str, number, bool, None) or a SQLAlchemy expression computed
               for each row from its own columns
               ({"price_cents": sa.cast(sa.column("price") * 100, sa.Integer)});
               or SQL text, what follows SET ("currency = 'EUR'").
      where    the rows to update: a SQLAlchemy boolean expression
               (sa.column("currency") == "eur") or SQL text; None updates
               every row.

    Expressions are compiled for PostgreSQL with their values inline (see
    compile_set_list and compile_expression) and sent as two text
    parameters (set => ..., "where" => ...); the extension parses them
    against the table and refuses anything else before any row changes.
    pause_ms, target_batch_ms, max_replica_lag, workers, resume and dry_run
    (count the matching rows, change nothing) are passed only when given.

    Runs in op.get_context().autocommit_block(), with the same refusals as
    safe_backfill (MigrationTransactionError: offline mode, or the
    migration's transaction already changed something; see the module's
    doc).  Not reversible by itself: downgrade() is yours (a safe_update
    that sets the old values back when you know them, or nothing).
    """
    _positive_int("batch_size", batch_size, 1)
    target = _table_target(table_name, schema)
    _require_autocommit_possible(op.get_context(), "safe_update", target)
    dialect = op.get_bind().dialect
    args = ["tbl => CAST(:tbl AS pg_catalog.regclass)",
            "set => CAST(:set AS pg_catalog.text)",
            '"where" => CAST(:where AS pg_catalog.text)']
    params = {"tbl": _quoted_table(op, table_name, schema),
              "set": compile_set_list(values, dialect),
              "where": None if where is None
              else compile_expression(where, dialect, "safe_update: where")}
    _batch_args(args, params, batch_size, pause_ms, target_batch_ms, max_replica_lag,
                workers, resume, dry_run)
    _call(op, "safe_update", target, "CALL safe_update(%s)" % ", ".join(args), params, stream)


def safe_delete(op, table_name, where, *, schema=None, batch_size=10000,
                pause_ms=None, target_batch_ms=None, max_replica_lag=None,
                workers=None, resume=None, dry_run=None, stream=None):
    """
    DELETE the rows of table_name that match `where` (a SQLAlchemy boolean
    expression or SQL text; required: TRUNCATE deletes every row) in
    batches of batch_size rows, each committed on its own (CALL
    safe_delete), as safe_update does.  A delete is not reversible:
    downgrade() cannot bring the rows back.
    """
    if where is None:
        raise ValueError(
            "safe_delete(%s) needs where= (the rows to delete); to delete every "
            "row use TRUNCATE" % _table_target(table_name, schema))
    _positive_int("batch_size", batch_size, 1)
    target = _table_target(table_name, schema)
    _require_autocommit_possible(op.get_context(), "safe_delete", target)
    args = ["tbl => CAST(:tbl AS pg_catalog.regclass)",
            '"where" => CAST(:where AS pg_catalog.text)']
    params = {"tbl": _quoted_table(op, table_name, schema),
              "where": compile_expression(where, op.get_bind().dialect, "safe_delete: where")}
    _batch_args(args, params, batch_size, pause_ms, target_batch_ms, max_replica_lag,
                workers, resume, dry_run)
    _call(op, "safe_delete", target, "CALL safe_delete(%s)" % ", ".join(args), params, stream)


def _start_detached(op, target, sql, params, stream):
    """SELECT safe_backfill_start(...) in the migration's own transaction."""
    stream = stream or sys.stdout
    run = op.get_bind().execute(sa.text(sql), params).scalar()
    stream.write("    safe_backfill: detached run %s queued for %s; a background worker "
                 "runs it once this migration's transaction commits. Wait for it in a "
                 "later migration: ensure_backfill_finished(op, ...)\n" % (run, target))
    stream.flush()
    return run


def ensure_backfill_finished(op, table_name, column_name, *, schema=None,
                             timeout=None, stream=None):
    """
    Wait for the latest detached run of table_name.column_name
    (safe_backfill(op, ..., detached=True) in an earlier migration), found
    by the table's OID and the column's number
    (safe_backfill_detached_run): CALL safe_backfill_wait(id, timeout),
    which relays the run's progress and fails the migration with the run's
    own error (and SQLSTATE) if it failed or was cancelled, or when timeout
    (e.g. "30 min"; None: no limit) passes first.  No detached run of the
    column is an error too (RuntimeError): the migration that queues it was
    not applied here.

    The wait commits between looks, so it runs in
    op.get_context().autocommit_block(), with the same refusals as
    safe_backfill (see the module's doc): put it first in its migration.
    """
    target = _target(table_name, column_name, schema)
    _require_autocommit_possible(op.get_context(), "safe_backfill_wait", target)
    params = {"tbl": _quoted_table(op, table_name, schema), "col": column_name}
    run = op.get_bind().execute(sa.text(
        "SELECT safe_backfill_detached_run(CAST(:tbl AS pg_catalog.regclass), "
        "CAST(:col AS pg_catalog.name))"), params).scalar()
    if run is None:
        raise RuntimeError(
            "ensure_backfill_finished(%s): no detached run of this column was found "
            "in safe_backfill_progress: apply the migration with "
            "safe_backfill(op, ..., detached=True) first" % target)
    _call(op, "safe_backfill_wait", target,
          "CALL safe_backfill_wait(CAST(:run AS pg_catalog.int8), "
          "timeout => CAST(:timeout AS pg_catalog.interval))",
          {"run": run, "timeout": timeout}, stream)


def safe_set_not_null(op, table_name, column_name, *, schema=None,
                      drop_check=None, lock_timeout=None, max_attempts=None,
                      stream=None):
    """
    Make table_name.column_name NOT NULL without a scan under ACCESS
    EXCLUSIVE (CALL safe_set_not_null).  drop_check (None: drop the helper
    CHECK only if the procedure added it; True: always; False: never),
    lock_timeout (e.g. "5s", per attempt at an ACCESS EXCLUSIVE step) and
    max_attempts are passed only when given; otherwise the GUCs
    safe_backfill.lock_timeout and safe_backfill.max_lock_attempts apply.

    Reverse it in downgrade() with op.alter_column(table, column,
    nullable=True) (DROP NOT NULL, a catalog-only change).
    """
    target = _target(table_name, column_name, schema)
    _require_autocommit_possible(op.get_context(), "safe_set_not_null", target)
    args = ["tbl => CAST(:tbl AS pg_catalog.regclass)",
            "col => CAST(:col AS pg_catalog.name)"]
    params = {"tbl": _quoted_table(op, table_name, schema), "col": column_name}
    for name, given, sql_type in [("drop_check", drop_check, "pg_catalog.bool"),
                                  ("lock_timeout", lock_timeout, "pg_catalog.interval"),
                                  ("max_attempts", max_attempts, "pg_catalog.int4")]:
        if given is not None:
            args.append("%s => CAST(:%s AS %s)" % (name, name, sql_type))
            params[name] = given
    _call(op, "safe_set_not_null", target,
          "CALL safe_set_not_null(%s)" % ", ".join(args), params, stream)
