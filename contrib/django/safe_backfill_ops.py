"""
Django migration operations for the safe_backfill PostgreSQL extension.

    from safe_backfill_ops import SafeBackfill, SafeSetNotNull

    class Migration(migrations.Migration):
        atomic = False      # required: both procedures commit as they go
        dependencies = [("shop", "0002_order_status")]
        operations = [
            SafeBackfill("order", "status", "new", batch_size=10000),
            SafeSetNotNull("order", "status"),
        ]

SafeBackfill runs CALL safe_backfill(...): the NULLs of the column are filled
batch by batch, each batch committed on its own, so other sessions keep
reading and writing the table.  SafeSetNotNull runs CALL
safe_set_not_null(...): CHECK (col IS NOT NULL) NOT VALID, VALIDATE, then
SET NOT NULL, which PostgreSQL proves from the validated check without a
scan under ACCESS EXCLUSIVE; it also changes the migration state to
null=False, so no SeparateDatabaseAndState is needed.

Both operations
  * take the model and field names of the migration state, and find the
    table and column (db_table, db_column) from it;
  * refuse to run in an atomic migration (or inside transaction.atomic()),
    because PostgreSQL only lets a procedure COMMIT outside a transaction
    block: set atomic = False on the Migration class;
  * pass every value (and an expression's SQL text) as a query parameter;
  * print the extension's NOTICEs (progress lines, summary) to the
    migration's output while the CALL runs (psycopg2 and psycopg 3).

SafeBackfill(..., set_not_null=True) does both in one CALL.

Computed values: SafeBackfill(model, field, expression=...) fills each row
from its own columns instead of a constant (CALL safe_backfill(...,
expression => ...)):

    from django.db.models import F, Value
    from django.db.models.expressions import RawSQL
    from django.db.models.functions import Concat, Lower

    SafeBackfill("user", "email_lower", expression=Lower("email"))
    SafeBackfill("user", "full_name",
                 expression=Concat("first_name", Value(" "), "last_name"))
    SafeBackfill("user", "public_id", expression=RawSQL("gen_random_uuid()", []))

A Django expression is compiled with the model's query compiler (columns
come out as "table"."column"), as QuerySet.update() would compile it, and
may use only the model's own columns: related lookups (joins), aggregates,
window expressions and subqueries are refused with an
UnsupportedExpressionError before anything is sent.  RawSQL(sql, params)
passes SQL text of your own (Django's RawSQL conventions: %s for each
parameter, %% for a literal %); reads from other tables go there, e.g.
RawSQL("(SELECT p.namespace_id FROM project p WHERE p.id = issue.project_id)",
[]).  The parameters of either are inlined into the expression text by the
database driver's own quoting (cursor.mogrify), and that text is sent as one
query parameter of the CALL; the extension parses it as exactly one SQL
expression, checks its type against the column and evaluates it per row with
the caller's privileges.  Exactly one of value and expression.

Reversing: SafeBackfill writes nothing back (the values stay; the migration
that added the column drops it when reversed further).  SafeSetNotNull, and
SafeBackfill with set_not_null, run ALTER COLUMN ... DROP NOT NULL backwards,
a catalog-only change.

Detached runs (the two-deploy pattern): SafeBackfill(..., detached=True)
runs SELECT safe_backfill_start(...) instead of the CALL: it checks the
arguments, queues the run and returns at once; a background worker of the
server runs it as the migration's role once the migration's transaction
commits (so it may stay in an atomic migration: the run starts when the
migration commits, and nothing runs if it rolls back).  A later migration,
deployed after the run had time to finish, waits for it and promotes:

    # 0010: deploy 1 (atomic is fine)
    operations = [SafeBackfill("ticket", "priority", 3, detached=True)]

    # 0011: deploy 2
    atomic = False      # safe_backfill_wait and safe_set_not_null commit
    operations = [
        EnsureBackfillFinished("ticket", "priority"),
        SafeSetNotNull("ticket", "priority"),
    ]

EnsureBackfillFinished runs CALL safe_backfill_wait on the column's latest
detached run: it returns when the run is done, relaying its progress, and
fails the migration with the run's error if it failed or was cancelled.
Without shared_preload_libraries = 'safe_backfill' a server restart stops
a detached run until it is started again (see the extension's README).

Requires the safe_backfill extension in the database
(CREATE EXTENSION safe_backfill, e.g. with
django.contrib.postgres.operations.CreateExtension in an earlier migration).
Copy this file into your project, or put contrib/django on sys.path.
"""

import sys

from django.db import NotSupportedError
from django.db.migrations.operations import AlterField
from django.db.migrations.operations.base import Operation

__all__ = ["SafeBackfill", "SafeSetNotNull", "EnsureBackfillFinished",
           "AtomicMigrationError", "UnsupportedExpressionError"]


class AtomicMigrationError(RuntimeError):
    """The operation was asked to run inside a transaction block."""


class UnsupportedExpressionError(ValueError):
    """SafeBackfill's expression cannot be computed from the row alone, or
    cannot be turned into SQL text; raised before anything is sent."""


# ---------------------------------------------------------------------------
# helpers

def _require_postgresql(connection, op):
    if connection.vendor != "postgresql":
        raise NotSupportedError(
            "%s needs PostgreSQL with the safe_backfill extension, not %s."
            % (op.__class__.__name__, connection.vendor))


def _require_non_atomic(schema_editor, op, app_label, procedure):
    """
    Refuse before anything is sent: in a transaction block the CALL would
    fail anyway (SQLSTATE 2D000), but this says which setting to change.
    """
    connection = schema_editor.connection
    why = None
    if schema_editor.atomic_migration:
        why = ("the migration is atomic. Set atomic = False on the Migration "
               "class (app '%s'); its other operations then run without a "
               "surrounding transaction, each on its own" % app_label)
    elif connection.in_atomic_block:
        why = ("migrate is running inside transaction.atomic() (or a test "
               "case's transaction). Run it outside any transaction block, "
               "with atomic = False on the Migration class")
    elif not schema_editor.collect_sql and not connection.get_autocommit():
        why = ("autocommit is off on the database connection, so every "
               "statement runs in a transaction block. Turn autocommit on, "
               "with atomic = False on the Migration class")
    if why:
        raise AtomicMigrationError(
            "%s of %s.%s.%s cannot run in a transaction: CALL %s commits as "
            "it goes, which PostgreSQL allows only outside a transaction "
            "block, and %s. Nothing was changed."
            % (op.__class__.__name__, app_label, op.model_name, op.name,
               procedure, why))


def _resolve(state, app_label, model_name, field_name):
    """(model, field) from a migration state: db_table and column come from there."""
    model = state.apps.get_model(app_label, model_name)
    field = model._meta.get_field(field_name)
    if getattr(field, "column", None) is None or not field.concrete:
        raise ValueError(
            "%s.%s is not a field with a database column"
            % (model._meta.label, field_name))
    return model, field


def _not_null_state_forwards(app_label, state, model_name, name, field):
    """Change the field in the state to null=False (to `field` if given)."""
    if field is None:
        old = state.models[app_label, model_name.lower()].fields[name]
        _, _, args, kwargs = old.deconstruct()
        kwargs.pop("null", None)
        field = old.__class__(*args, **kwargs)
    # AlterField knows how to change a field in every Django version's state.
    AlterField(model_name, name, field).state_forwards(app_label, state)


def _drop_not_null(schema_editor, to_state, app_label, model_name, name, op):
    """The reverse of a NOT NULL: a catalog-only change."""
    model, field = _resolve(to_state, app_label, model_name, name)
    if not op.allow_migrate_model(schema_editor.connection.alias, model):
        return
    schema_editor.execute("ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL" % (
        schema_editor.quote_name(model._meta.db_table),
        schema_editor.quote_name(field.column)))


# ---------------------------------------------------------------------------
# expressions: Django expression -> one SQL expression text

def _expression_nodes(node):
    """
    The expression and everything inside it, depth first: source
    expressions, a Q's lookup values (When(account__name=...)), a lookup's
    sides.  Stops at querysets and queries (a subquery is refused whole).
    """
    from django.db.models import Q
    from django.db.models.query import QuerySet
    from django.db.models.sql.query import Query

    yield node
    if isinstance(node, (QuerySet, Query)):
        return
    if isinstance(node, Q):
        children = [c[1] if isinstance(c, tuple) else c for c in node.children]
    elif isinstance(node, (list, tuple)):
        children = list(node)
    elif hasattr(node, "get_source_expressions"):
        children = node.get_source_expressions()
    else:
        children = []
    for child in children:
        if child is not None:
            yield from _expression_nodes(child)


def _describe(node):
    """repr() of an expression, or its class name where repr() says nothing."""
    text = repr(node)
    if text.startswith("<") and " object at 0x" in text:
        return "%s(...)" % type(node).__name__
    return text


_ONE_ROW = ("each row's value is computed from that row alone, as in "
            "UPDATE ... SET")


def _refusal(node):
    """(what `node` is, why that cannot be used) or None if it can be."""
    from django.db.models import Aggregate, Subquery, Window
    from django.db.models.expressions import OuterRef
    from django.db.models.query import QuerySet
    from django.db.models.sql.query import Query

    if isinstance(node, Aggregate):
        return "an aggregate", _ONE_ROW + ", and an aggregate needs other rows"
    if isinstance(node, Window) or getattr(type(node), "contains_over_clause", False) is True:
        return "a window expression", _ONE_ROW + ", and a window function needs other rows"
    if isinstance(node, (Subquery, QuerySet, Query)):
        return ("a subquery",
                "a Django expression may use only the model's own columns; to read "
                "another table, write the SQL as RawSQL(\"(SELECT ... FROM other "
                "WHERE other.id = <table>.<column>)\", [])")
    if isinstance(node, OuterRef):
        return "an OuterRef", "it is only meaningful inside a subquery"
    return None


def _check_expression_shape(expression):
    """
    What can be refused without the model, when the operation is created
    (so a migration file with such an expression fails as soon as it loads).
    """
    from django.db.models import Q

    if isinstance(expression, str):
        raise UnsupportedExpressionError(
            "SafeBackfill: expression=%r is a string. Pass SQL text as "
            "RawSQL(%r, []) (%%s for each parameter, %%%% for a literal %%), "
            "a column as F(\"<field name>\"), or a constant as value="
            % (expression, expression))
    if isinstance(expression, Q) or not hasattr(expression, "resolve_expression"):
        raise UnsupportedExpressionError(
            "SafeBackfill: expression=%r is not a Django expression (F(), Value(), "
            "a database function, Case/When, Cast, RawSQL, ...); a condition "
            "goes in ExpressionWrapper(Q(...), output_field=BooleanField())"
            % (expression,))
    for node in _expression_nodes(expression):
        refused = _refusal(node)
        if refused:
            what, why = refused
            if node is expression:
                found = "is %s" % what
            else:
                found = "contains %s, %s" % (what, _describe(node))
            raise UnsupportedExpressionError(
                "SafeBackfill: expression=%s %s: %s. Nothing was changed."
                % (_describe(expression), found, why))


def _inline_params(connection, sql, params):
    """
    SQL with %s placeholders (and %% for a literal %) and its parameters ->
    one SQL text, each parameter quoted by the database driver itself for
    this connection (encoding, standard_conforming_strings): psycopg2's or
    psycopg 3's mogrify, never Python string formatting of values.
    """
    params = tuple(params)
    connection.ensure_connection()
    try:
        compose_sql = getattr(connection.ops, "compose_sql", None)
        if compose_sql is not None:          # Django 4.2+: psycopg2 and psycopg 3
            return compose_sql(sql, params)
        raw = connection.connection
        with raw.cursor() as cursor:        # Django < 4.2: psycopg2
            text = cursor.mogrify(sql, params)
    except Exception as exc:                 # an adapter refused a parameter
        raise UnsupportedExpressionError(
            "SafeBackfill: cannot write the parameters %r of the expression as SQL "
            "literals (%s: %s). Use values the database driver can quote "
            "(str, numbers, dates, Decimal, UUID, bool, None). Nothing was "
            "changed."
            % (params, type(exc).__name__, exc)) from exc
    if isinstance(text, bytes):
        import psycopg2.extensions
        text = text.decode(psycopg2.extensions.encodings.get(raw.encoding, "utf-8"))
    return text


def compile_expression(model, expression, connection):
    """
    The SQL text of `expression` for filling a column of `model`, compiled by
    the model's query compiler as QuerySet.update() compiles its values:
    columns as "table"."column", joins not allowed, parameters inlined.
    Raises UnsupportedExpressionError (nothing is sent but the driver's
    quoting of parameters).
    """
    from django.core.exceptions import FieldError
    from django.db.models.expressions import RawSQL
    from django.db.models.sql.query import Query

    _check_expression_shape(expression)
    table = model._meta.db_table
    if type(expression) is RawSQL:
        # Taken as written.  (RawSQL.resolve_expression only looks for
        # columns of parent models named in the text, to join them.)
        return _inline_params(connection, "(%s)" % expression.sql, expression.params)

    query = Query(model)
    try:
        resolved = expression.resolve_expression(
            query, allow_joins=False, reuse=None, summarize=False, for_save=True)
    except FieldError as exc:
        raise UnsupportedExpressionError(
            "SafeBackfill: expression=%s on %s: %s. Only the columns of table "
            "\"%s\" itself can be used: no related lookups (joins), no fields "
            "of a parent model; to read another table, write the SQL as RawSQL. "
            "Nothing was changed."
            % (_describe(expression), model._meta.label, exc, table)) from exc
    if resolved.contains_aggregate or resolved.contains_over_clause:
        raise UnsupportedExpressionError(
            "SafeBackfill: expression=%s contains an aggregate or a window "
            "expression: %s. Nothing was changed." % (_describe(expression), _ONE_ROW))
    # A backstop: allow_joins=False already refuses related lookups.
    other_tables = sorted(a for a, refs in query.alias_refcount.items()
                          if refs and a != table)
    if other_tables:
        raise UnsupportedExpressionError(
            "SafeBackfill: expression=%s reads %s besides \"%s\": only the "
            "model's own columns can be used. Nothing was changed."
            % (_describe(expression), ", ".join(other_tables), table))
    compiler = query.get_compiler(connection=connection)
    try:
        sql, params = compiler.compile(resolved)
    except (FieldError, ValueError) as exc:
        raise UnsupportedExpressionError(
            "SafeBackfill: expression=%s cannot be compiled to SQL: %s. "
            "Nothing was changed." % (_describe(expression), exc)) from exc
    return _inline_params(connection, sql, params)


def _fields_referenced(expression):
    """
    Names of the fields the expression reads (first part of each F() name),
    or None when unknown (RawSQL text).
    """
    from django.db.models import F, Q
    from django.db.models.constants import LOOKUP_SEP
    from django.db.models.expressions import RawSQL

    names = set()
    for node in _expression_nodes(expression):
        if isinstance(node, RawSQL):
            return None
        if isinstance(node, F):
            names.add(node.name.split(LOOKUP_SEP, 1)[0].lower())
        elif isinstance(node, Q):   # When(vip=True): the lookup names a field
            names.update(c[0].split(LOOKUP_SEP, 1)[0].lower()
                         for c in node.children if isinstance(c, tuple))
    return names


class _NoticePrinter:
    """
    Stands in for psycopg2's connection.notices list: every NOTICE is printed
    when it arrives instead of being kept (the list would keep only 50).
    """

    def __init__(self, stream):
        self.stream = stream
        self.printed = 0

    def append(self, text):
        self.write(text)

    def write(self, text):
        text = text.rstrip("\n")
        if not text:
            return
        if self.printed == 0:
            # migrate has written "  Applying app.0003_x..." without a newline
            self.stream.write("\n")
        for line in text.splitlines():
            self.stream.write("    %s\n" % line)
        self.stream.flush()
        self.printed += 1


def _execute_showing_notices(schema_editor, sql, params, stream=None):
    """
    Run one statement through the schema editor (so sqlmigrate shows it and
    it is logged) and print the server's NOTICEs as they arrive.
    """
    if schema_editor.collect_sql:
        schema_editor.execute(sql, params)
        return

    connection = schema_editor.connection
    connection.ensure_connection()
    raw = connection.connection
    printer = _NoticePrinter(stream or sys.stdout)

    if hasattr(raw, "add_notice_handler"):
        # psycopg 3: the handler is called while the result is being read.
        def handler(diag):
            text = "%s:  %s" % (diag.severity, diag.message_primary)
            if diag.message_detail:
                text += "\nDETAIL:  %s" % diag.message_detail
            printer.write(text)

        raw.add_notice_handler(handler)
        try:
            schema_editor.execute(sql, params)
        finally:
            raw.remove_notice_handler(handler)
        return

    if not hasattr(raw, "notices"):
        schema_editor.execute(sql, params)
        return

    # psycopg2: notices only reach Python when the client polls the
    # connection.  A blocking execute polls once, at the end; with a wait
    # callback psycopg2 polls all along, so progress lines show up live, and
    # Ctrl-C cancels the CALL (batches committed so far stay committed).
    import psycopg2.extensions
    import psycopg2.extras

    old_notices = raw.notices
    raw.notices = printer
    own_callback = psycopg2.extensions.get_wait_callback() is None
    if own_callback:
        psycopg2.extensions.set_wait_callback(psycopg2.extras.wait_select)
    try:
        schema_editor.execute(sql, params)
    finally:
        if own_callback:
            psycopg2.extensions.set_wait_callback(None)
        raw.notices = old_notices


def _start_detached(schema_editor, sql, params, stream=None):
    """SELECT safe_backfill_start(...): print the id of the run it queued."""
    if schema_editor.collect_sql:
        schema_editor.execute(sql, params)
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(sql, params)
        run_id = cursor.fetchone()[0]
    out = stream or sys.stdout
    out.write("\n    safe_backfill: detached run %s queued; a background worker runs it "
              "once this migration commits (safe_backfill_progress shows it)\n" % run_id)
    out.flush()


# ---------------------------------------------------------------------------
# operations

class _FieldOperation(Operation):
    """What both operations share: they act on one field of one model."""

    @property
    def model_name_lower(self):
        return self.model_name.lower()

    def references_model(self, name, app_label):
        return name.lower() == self.model_name_lower

    def references_field(self, model_name, name, app_label):
        return self.references_model(model_name, app_label) and name.lower() == self.name.lower()

    def _target(self, app_label, schema_editor, to_state):
        """(model, field) to run against, or None when this database is not migrated;
        refuses before anything is sent when the CALL could not commit."""
        model, field = _resolve(to_state, app_label, self.model_name, self.name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return None
        _require_postgresql(schema_editor.connection, self)
        _require_non_atomic(schema_editor, self, app_label, self.procedure)
        return model, field


class SafeBackfill(_FieldOperation):
    """
    SafeBackfill(model_name, name, value=None, batch_size=10000, pause_ms=0,
                 set_not_null=False, field=None, expression=None)

    Fill the NULLs of field `name` of `model_name` in batches of `batch_size`
    rows, each committed on its own (CALL safe_backfill), with either

      value       a constant: converted by the field (get_db_prep_save) and
                  sent as a query parameter; the extension checks it against
                  the column's type before any row is written; or
      expression  a Django expression computed for each row from the model's
                  own columns (Lower("email"), Concat(...), Case(When(...)),
                  Cast(...), F(...), arithmetic), or RawSQL(sql, params) for
                  SQL text of your own.  It is compiled with the model's
                  query compiler, its parameters quoted by the database
                  driver, and the resulting text sent as one query parameter
                  (CALL safe_backfill(..., expression => %s)); the extension
                  parses it as one SQL expression and checks its type before
                  any row is written.  Joins, aggregates, window expressions
                  and subqueries are refused (UnsupportedExpressionError)
                  before anything is sent.  Rows where it gives NULL stay
                  NULL.

    Exactly one of value and expression.  Needs atomic = False on the
    migration.

    set_not_null=True makes the column NOT NULL after the last batch, as
    SafeSetNotNull does, and changes the state to null=False (to `field`, if
    given).

    Backwards it writes nothing back: the values stay (reversing the
    AddField that created the column drops them); with set_not_null it runs
    DROP NOT NULL.
    """

    reversible = True
    reduces_to_sql = True
    atomic = False
    procedure = "safe_backfill"

    def __init__(self, model_name, name, value=None, batch_size=10000, pause_ms=0,
                 set_not_null=False, field=None, expression=None, detached=False):
        if value is None and expression is None:
            raise ValueError(
                "SafeBackfill needs value= (a constant other than None) or "
                "expression= (a Django expression or RawSQL)")
        if value is not None and expression is not None:
            raise ValueError(
                "SafeBackfill takes exactly one of value= and expression=, "
                "not both (value=%r, expression=%r)" % (value, expression))
        if expression is not None:
            _check_expression_shape(expression)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError("batch_size must be a positive integer, not %r" % (batch_size,))
        if not isinstance(pause_ms, int) or pause_ms < 0:
            raise ValueError("pause_ms must be an integer >= 0, not %r" % (pause_ms,))
        self.model_name = model_name
        self.name = name
        self.value = value
        self.expression = expression
        self.batch_size = batch_size
        self.pause_ms = pause_ms
        if field is not None and not set_not_null:
            raise ValueError("SafeBackfill: field is only used with set_not_null=True")
        if field is not None and field.null:
            raise ValueError("SafeBackfill: the new field must have null=False")
        self.set_not_null = bool(set_not_null)
        self.field = field
        if detached and set_not_null:
            raise ValueError(
                "SafeBackfill: detached=True does not take set_not_null=True: the "
                "state would say NOT NULL before the run ends; use "
                "EnsureBackfillFinished and SafeSetNotNull in a later migration")
        self.detached = bool(detached)

    def references_field(self, model_name, name, app_label):
        if super().references_field(model_name, name, app_label):
            return True
        if self.expression is None or not self.references_model(model_name, app_label):
            return False
        # The fields the expression reads; RawSQL text: any field may be.
        read = _fields_referenced(self.expression)
        return read is None or name.lower() in read

    def state_forwards(self, app_label, state):
        if self.set_not_null:
            _not_null_state_forwards(app_label, state, self.model_name, self.name, self.field)

    def _target(self, app_label, schema_editor, to_state):
        if not self.detached:
            return super()._target(app_label, schema_editor, to_state)
        # detached: a function, fine in an atomic migration
        model, field = _resolve(to_state, app_label, self.model_name, self.name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return None
        _require_postgresql(schema_editor.connection, self)
        return model, field

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        target = self._target(app_label, schema_editor, to_state)
        if target is None:
            return
        model, field = target
        connection = schema_editor.connection
        # The table goes in quoted: regclass reads it like an identifier in SQL.
        params = [schema_editor.quote_name(model._meta.db_table), field.column]
        if self.expression is not None:
            # Compiled (and refused if need be) before anything is sent.
            source = "expression => %s"
            params.append(compile_expression(model, self.expression, connection))
        else:
            source = "value => %s"
            params.append(field.get_db_prep_save(self.value, connection=connection))
        sql = ("CALL safe_backfill(tbl => %s::regclass, col => %s::name, "
               + source + ", batch_size => %s, pause_ms => %s")
        params += [self.batch_size, self.pause_ms]
        if self.set_not_null:
            sql += ", set_not_null => %s"
            params.append(True)
        if self.detached:
            _start_detached(schema_editor, sql.replace("CALL safe_backfill(", "SELECT safe_backfill_start(", 1)
                            + ")", params)
            return
        _execute_showing_notices(schema_editor, sql + ")", params)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        # The values stay: which rows were NULL before is not known, and
        # writing NULL back in batches would only cost time.
        if self.set_not_null:
            _drop_not_null(schema_editor, to_state, app_label, self.model_name, self.name, self)

    def describe(self):
        source = ("expression %r" % (self.expression,) if self.expression is not None
                  else "%r" % (self.value,))
        return "Backfill NULL %s.%s with %s in batches of %d%s (safe_backfill%s)" % (
            self.model_name, self.name, source, self.batch_size,
            ", then NOT NULL" if self.set_not_null else "",
            "_start, detached" if self.detached else "")

    @property
    def migration_name_fragment(self):
        return "backfill_%s_%s" % (self.model_name_lower, self.name.lower())



class SafeSetNotNull(_FieldOperation):
    """
    SafeSetNotNull(model_name, name, field=None, drop_check=None,
                   lock_timeout=None, max_attempts=None)

    Make the column NOT NULL without a scan under ACCESS EXCLUSIVE
    (CALL safe_set_not_null).  The migration state becomes null=False: the
    current field with null=False, or `field` if given (it must have
    null=False; use it to also record e.g. a default, as AlterField would).
    drop_check (None: drop the helper CHECK only if the procedure added it;
    True: always; False: never), lock_timeout (e.g. "5s", per attempt at an
    ACCESS EXCLUSIVE step) and max_attempts are passed to the procedure only
    when given; otherwise its defaults (the GUCs safe_backfill.lock_timeout
    and safe_backfill.max_lock_attempts) apply.  Needs atomic = False on the
    migration.

    Backwards: ALTER TABLE ... ALTER COLUMN ... DROP NOT NULL (catalog only).
    """

    reversible = True
    reduces_to_sql = True
    atomic = False
    procedure = "safe_set_not_null"

    def __init__(self, model_name, name, field=None, drop_check=None,
                 lock_timeout=None, max_attempts=None):
        if field is not None and field.null:
            raise ValueError("SafeSetNotNull: the new field must have null=False")
        self.model_name = model_name
        self.name = name
        self.field = field
        self.drop_check = drop_check
        self.lock_timeout = lock_timeout
        self.max_attempts = max_attempts

    def state_forwards(self, app_label, state):
        _not_null_state_forwards(app_label, state, self.model_name, self.name, self.field)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        target = self._target(app_label, schema_editor, to_state)
        if target is None:
            return
        model, field = target
        args = ["tbl => %s::regclass", "col => %s::name"]
        params = [schema_editor.quote_name(model._meta.db_table), field.column]
        if self.drop_check is not None:
            args.append("drop_check => %s")
            params.append(bool(self.drop_check))
        if self.lock_timeout is not None:
            args.append("lock_timeout => %s::interval")
            params.append(self.lock_timeout)
        if self.max_attempts is not None:
            args.append("max_attempts => %s")
            params.append(int(self.max_attempts))
        _execute_showing_notices(
            schema_editor, "CALL safe_set_not_null(%s)" % ", ".join(args), params)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        _drop_not_null(schema_editor, to_state, app_label, self.model_name, self.name, self)

    def describe(self):
        return "Set %s.%s NOT NULL without a table scan (safe_set_not_null)" % (
            self.model_name, self.name)

    @property
    def migration_name_fragment(self):
        return "set_not_null_%s_%s" % (self.model_name_lower, self.name.lower())



class EnsureBackfillFinished(_FieldOperation):
    """
    EnsureBackfillFinished(model_name, name, timeout=None)

    Wait for the latest detached run (SafeBackfill(..., detached=True)) of
    field `name` of `model_name` to end: CALL safe_backfill_wait(id,
    timeout), which relays its progress and fails the migration with the
    run's own error (and SQLSTATE) if it failed or was cancelled, or when
    timeout (e.g. "30 min"; None: no limit) passes first.  No detached run
    of the column at all is an error too: the migration that starts it was
    not applied here.  Needs atomic = False on the migration (the wait
    commits between looks, holding no snapshot).  The state is unchanged;
    backwards it does nothing.
    """

    reversible = True
    reduces_to_sql = True
    atomic = False
    procedure = "safe_backfill_wait"

    # the latest detached run of the column, by the table's OID and the
    # column's number (found after a rename), among the runs this role sees
    FIND_RUN = "SELECT safe_backfill_detached_run(%s::regclass, %s)"

    def __init__(self, model_name, name, timeout=None):
        self.model_name = model_name
        self.name = name
        self.timeout = timeout

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        target = self._target(app_label, schema_editor, to_state)
        if target is None:
            return
        model, field = target
        table = schema_editor.quote_name(model._meta.db_table)
        if schema_editor.collect_sql:
            schema_editor.execute("CALL safe_backfill_wait((%s), timeout => %%s::interval)" % self.FIND_RUN,
                                  [table, field.column, self.timeout])
            return
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(self.FIND_RUN, [table, field.column])
            row = cursor.fetchone()
        if row is None or row[0] is None:
            raise RuntimeError(
                "EnsureBackfillFinished: no detached run of %s.%s was found in "
                "safe_backfill_progress: apply the migration with "
                "SafeBackfill(..., detached=True) first" % (model._meta.db_table, field.column))
        _execute_showing_notices(schema_editor,
                                 "CALL safe_backfill_wait(%s, timeout => %s::interval)",
                                 [row[0], self.timeout])

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        pass

    def describe(self):
        return "Wait for the detached backfill of %s.%s to finish (safe_backfill_wait)" % (
            self.model_name, self.name)

    @property
    def migration_name_fragment(self):
        return "ensure_backfilled_%s_%s" % (self.model_name_lower, self.name.lower())
