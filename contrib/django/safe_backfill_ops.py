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

Batched updates and deletes: SafeUpdate(model, set={...}, where=...) and
SafeDelete(model, where=...) run CALL safe_update / safe_delete: each batch
of the primary-key walk runs UPDATE ... SET ... WHERE <range> AND (<where>)
(or DELETE) and commits.

    from django.db.models import F, Q
    from django.db.models.functions import Lower

    SafeUpdate("order", set={"currency": "EUR"}, where=Q(currency="eur"))
    SafeUpdate("user", set={"email": Lower("email")}, where=~Q(email=Lower("email")))
    SafeDelete("event", where=Q(created_at__lt=datetime(2024, 1, 1, tzinfo=timezone.utc)))

set takes what QuerySet.update() takes (constants converted by the field,
expressions as for expression= above); where a Q object (compiled as
QuerySet.filter() compiles it) or a boolean expression.  Both are compiled
with the model's query compiler and each sent as one query parameter, which
the extension parses; joins, aggregates, windows and subqueries are refused
before anything is sent.  Write the where so that a changed row no longer
matches it: applying the migration again is then a no-op.  Backwards,
SafeUpdate writes nothing back and says so; SafeDelete is irreversible; both
take reverse_code=callable(apps, schema_editor) as RunPython does
(RunPython.noop to let a SafeDelete be unapplied).  dry_run=True counts the
matching rows and changes nothing.

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
           "SafeUpdate", "SafeDelete",
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
            "%s of %s cannot run in a transaction: CALL %s commits as "
            "it goes, which PostgreSQL allows only outside a transaction "
            "block, and %s. Nothing was changed."
            % (op.__class__.__name__,
               ".".join(filter(None, (app_label, op.model_name, getattr(op, "name", None)))),
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
    """repr() of an expression, or its class name where repr() says nothing;
    a Q's lookups and a queryset described without running the query (the
    repr() of a queryset fetches its rows)."""
    from django.db.models import Q
    from django.db.models.query import QuerySet

    if isinstance(node, QuerySet):
        return "<QuerySet of %s>" % node.model._meta.label
    if isinstance(node, Q):
        parts = ["Q(%s=%s)" % (c[0], _describe(c[1])) if isinstance(c, tuple) else _describe(c)
                 for c in node.children]
        if len(parts) == 1:
            text = parts[0]
        else:
            text = "(%s)" % (" & " if node.connector == Q.AND else " | ").join(parts)
        return "~" + text if node.negated else text
    if isinstance(node, (list, tuple)):
        return repr(type(node)(_Shown(_describe(item)) for item in node))
    text = repr(node)
    if text.startswith("<") and " object at 0x" in text:
        return "%s(...)" % type(node).__name__
    return text


class _Shown(str):
    """Text that repr() shows as it is."""

    def __repr__(self):
        return str(self)


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


def _check_expression_shape(expression, label="SafeBackfill: expression"):
    """
    What can be refused without the model, when the operation is created
    (so a migration file with such an expression fails as soon as it loads).
    `label` names the operation and argument in messages.
    """
    from django.db.models import Q

    if isinstance(expression, str):
        raise UnsupportedExpressionError(
            "%s=%r is a string. Pass SQL text as "
            "RawSQL(%r, []) (%%s for each parameter, %%%% for a literal %%), "
            "a column as F(\"<field name>\"), or a constant as value="
            % (label, expression, expression))
    if isinstance(expression, Q) or not hasattr(expression, "resolve_expression"):
        raise UnsupportedExpressionError(
            "%s=%r is not a Django expression (F(), Value(), "
            "a database function, Case/When, Cast, RawSQL, ...); a condition "
            "goes in ExpressionWrapper(Q(...), output_field=BooleanField())"
            % (label, expression))
    _refuse_other_rows(expression, label)


def _refuse_other_rows(expression, label):
    """Refuse what needs other rows or tables (aggregates, windows, subqueries),
    anywhere inside an expression or a Q."""
    for node in _expression_nodes(expression):
        refused = _refusal(node)
        if refused:
            what, why = refused
            if node is expression:
                found = "is %s" % what
            else:
                found = "contains %s, %s" % (what, _describe(node))
            raise UnsupportedExpressionError(
                "%s=%s %s: %s. Nothing was changed."
                % (label, _describe(expression), found, why))


def _inline_params(connection, sql, params, label="SafeBackfill"):
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
            "%s: cannot write the parameters %r of the expression as SQL "
            "literals (%s: %s). Use values the database driver can quote "
            "(str, numbers, dates, Decimal, UUID, bool, None). Nothing was "
            "changed."
            % (label, params, type(exc).__name__, exc)) from exc
    if isinstance(text, bytes):
        import psycopg2.extensions
        text = text.decode(psycopg2.extensions.encodings.get(raw.encoding, "utf-8"))
    return text


def compile_expression(model, expression, connection, label="SafeBackfill: expression"):
    """
    The SQL text of `expression` for filling a column of `model`, compiled by
    the model's query compiler as QuerySet.update() compiles its values:
    columns as "table"."column", joins not allowed, parameters inlined.
    Raises UnsupportedExpressionError (nothing is sent but the driver's
    quoting of parameters).  `label` names the operation and argument in
    messages.
    """
    from django.core.exceptions import FieldError
    from django.db.models.expressions import RawSQL
    from django.db.models.sql.query import Query

    _check_expression_shape(expression, label)
    if type(expression) is RawSQL:
        # Taken as written.  (RawSQL.resolve_expression only looks for
        # columns of parent models named in the text, to join them.)
        return _inline_params(connection, "(%s)" % expression.sql, expression.params, label)

    query = Query(model)
    try:
        resolved = expression.resolve_expression(
            query, allow_joins=False, reuse=None, summarize=False, for_save=True)
    except FieldError as exc:
        raise _own_columns_only(model, expression, exc, label) from exc
    return _compile_resolved(model, query, resolved, expression, connection, label)


def _own_columns_only(model, expression, exc, label):
    """The error for a FieldError found while resolving against the model."""
    return UnsupportedExpressionError(
        "%s=%s on %s: %s. Only the columns of table "
        "\"%s\" itself can be used: no related lookups (joins), no fields "
        "of a parent model; to read another table, write the SQL as RawSQL. "
        "Nothing was changed."
        % (label, _describe(expression), model._meta.label, exc, model._meta.db_table))


def _compile_resolved(model, query, resolved, expression, connection, label):
    """
    SQL text of an expression (or a Q's WHERE node) resolved against
    Query(model): refused if it needs other rows or tables.  Raises
    EmptyResultSet for a condition that matches no row (Django's own
    signal, e.g. Q(id__in=[])).
    """
    from django.core.exceptions import FieldError

    table = model._meta.db_table
    if resolved.contains_aggregate or resolved.contains_over_clause:
        raise UnsupportedExpressionError(
            "%s=%s contains an aggregate or a window "
            "expression: %s. Nothing was changed." % (label, _describe(expression), _ONE_ROW))
    # A backstop: allow_joins=False already refuses related lookups.
    other_tables = sorted(a for a, refs in query.alias_refcount.items()
                          if refs and a != table)
    if other_tables:
        raise UnsupportedExpressionError(
            "%s=%s reads %s besides \"%s\": only the "
            "model's own columns can be used. Nothing was changed."
            % (label, _describe(expression), ", ".join(other_tables), table))
    compiler = query.get_compiler(connection=connection)
    try:
        sql, params = compiler.compile(resolved)
    except (FieldError, ValueError) as exc:
        raise UnsupportedExpressionError(
            "%s=%s cannot be compiled to SQL: %s. "
            "Nothing was changed." % (label, _describe(expression), exc)) from exc
    if not sql:
        return ""      # a condition that matches every row (Q(), Django < 4.2)
    return _inline_params(connection, sql, params, label)


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


# ---------------------------------------------------------------------------
# SafeUpdate / SafeDelete: set and where -> SQL text

class _NoRowMatches(Exception):
    """The where compiles to Django's EmptyResultSet (e.g. Q(id__in=[]))."""


def _set_target_field(model, name, label):
    """The field `name` of `model` that SET may write: a concrete column of
    the model's own table, not its primary key."""
    from django.core.exceptions import FieldDoesNotExist

    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist as exc:
        raise UnsupportedExpressionError(
            "%s: %s has no field %r. Nothing was changed." % (label, model._meta.label, name)) from exc
    if not field.concrete or field.many_to_many or getattr(field, "column", None) is None:
        raise UnsupportedExpressionError(
            "%s: %s.%s is not a column of table \"%s\" (a reverse relation or a "
            "many-to-many field). Nothing was changed."
            % (label, model._meta.label, name, model._meta.db_table))
    if field.model._meta.concrete_model is not model._meta.concrete_model:
        raise UnsupportedExpressionError(
            "%s: %s.%s is a field of the parent model %s, whose column is in table "
            "\"%s\", not \"%s\": update the parent model. Nothing was changed."
            % (label, model._meta.label, name, field.model._meta.label,
               field.model._meta.db_table, model._meta.db_table))
    if field.primary_key:
        raise UnsupportedExpressionError(
            "%s: %s.%s is the primary key, which the batches walk by; it cannot be "
            "set. Nothing was changed." % (label, model._meta.label, name))
    return field


def _constant_sql(field, value, connection, label):
    """A constant for SET, converted as QuerySet.update() converts it (the
    field's get_db_prep_save and placeholder), quoted by the driver."""
    from django.db.models.sql.query import Query

    if hasattr(value, "prepare_database_save"):
        if not field.remote_field:
            raise UnsupportedExpressionError(
                "%s: a model instance, %r, for %s, which is not a relation. Nothing "
                "was changed." % (label, value, field.name))
        value = value.prepare_database_save(field)
    value = field.get_db_prep_save(value, connection=connection)
    if value is None:
        return "NULL"
    placeholder = "%s"
    if hasattr(field, "get_placeholder"):
        compiler = Query(field.model).get_compiler(connection=connection)
        placeholder = field.get_placeholder(value, compiler, connection)
    return _inline_params(connection, placeholder, [value], label)


def compile_set(model, values, connection, op_name="SafeUpdate"):
    """
    The SET list for `values` ({field name: constant or expression}) on
    `model`, as QuerySet.update(**values) would write it: "column" = SQL,
    joined by ", ", each column by its db_column, each value compiled by the
    model's query compiler (expressions, as for SafeBackfill's expression=)
    or converted by its field (constants), parameters quoted by the driver.
    Raises UnsupportedExpressionError before anything is sent.
    """
    quote = connection.ops.quote_name
    assignments = []
    for name, value in values.items():
        label = "%s: set[%r]" % (op_name, name)
        field = _set_target_field(model, name, label)
        if hasattr(value, "resolve_expression"):
            # (A field's get_placeholder, e.g. a geometry's, is "%s" for
            # an expression: Django's update compiler gets the same.)
            sql = compile_expression(model, value, connection, label)
        else:
            sql = _constant_sql(field, value, connection, label)
        assignments.append("%s = %s" % (quote(field.column), sql))
    return ", ".join(assignments)


def compile_where(model, where, connection, op_name="SafeUpdate"):
    """
    The SQL text of a condition on the rows of `model`: a Q (compiled as
    QuerySet.filter() compiles it, NULLs of negated lookups included) or a
    boolean Django expression (ExpressionWrapper(Q(...)), RawSQL, ...).
    None when it is None or matches every row (Q()).  Raises _NoRowMatches
    when Django knows that it matches no row (Q(id__in=[])), and
    UnsupportedExpressionError before anything is sent when it needs a
    join, an aggregate, a window or a subquery.
    """
    from django.core.exceptions import EmptyResultSet, FieldError
    from django.db.models import Q
    from django.db.models.sql.query import Query

    label = "%s: where" % op_name
    if where is None:
        return None
    try:
        if isinstance(where, Q):
            _refuse_other_rows(where, label)
            query = Query(model)
            try:
                node = query.build_where(where)
            except FieldError as exc:
                raise _own_columns_only(model, where, exc, label) from exc
            sql = _compile_resolved(model, query, node, where, connection, label)
        else:
            sql = compile_expression(model, where, connection, label)
    except EmptyResultSet as exc:
        raise _NoRowMatches() from exc
    except Exception as exc:
        # Django 4.2+: a condition that matches every row (Q()).
        if type(exc).__name__ == "FullResultSet":
            return None
        raise
    return sql or None


def _check_where_shape(where, op_name):
    """What can be refused about `where` when the operation is created."""
    from django.db.models import Q

    label = "%s: where" % op_name
    if isinstance(where, str):
        raise UnsupportedExpressionError(
            "%s=%r is a string. Pass a Q object (Q(created_at__lt=...)), or SQL "
            "text as RawSQL(%r, []) (%%s for each parameter, %%%% for a literal %%)"
            % (label, where, where))
    if isinstance(where, Q):
        _refuse_other_rows(where, label)
    elif hasattr(where, "resolve_expression"):
        _check_expression_shape(where, label)
    else:
        raise UnsupportedExpressionError(
            "%s=%r is neither a Q object nor a Django expression" % (label, where))


# ---------------------------------------------------------------------------
# SafeUpdate / SafeDelete

class _RowsOperation(Operation):
    """
    What SafeUpdate and SafeDelete share: the rows of one model that match
    `where`, changed in committed batches by one CALL; the state is unchanged.
    """

    reduces_to_sql = True
    atomic = False

    def _init_rows(self, model_name, where, batch_size, pause_ms, target_batch_ms,
                   max_replica_lag, workers, resume, dry_run, reverse_code, hints):
        if where is not None:
            _check_where_shape(where, type(self).__name__)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError("batch_size must be a positive integer, not %r" % (batch_size,))
        if not isinstance(pause_ms, int) or pause_ms < 0:
            raise ValueError("pause_ms must be an integer >= 0, not %r" % (pause_ms,))
        for name, value in (("target_batch_ms", target_batch_ms), ("workers", workers)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError("%s must be a positive integer or None, not %r" % (name, value))
        if reverse_code is not None and not callable(reverse_code):
            raise ValueError("reverse_code must be callable(apps, schema_editor), as "
                             "RunPython's, not %r" % (reverse_code,))
        self.model_name = model_name
        self.where = where
        self.batch_size = batch_size
        self.pause_ms = pause_ms
        self.target_batch_ms = target_batch_ms
        self.max_replica_lag = max_replica_lag
        self.workers = workers
        self.resume = resume
        self.dry_run = bool(dry_run)
        self.reverse_code = reverse_code
        self.hints = dict(hints or {})

    @property
    def model_name_lower(self):
        return self.model_name.lower()

    def references_model(self, name, app_label):
        return name.lower() == self.model_name_lower

    def _fields_read(self):
        """Lower-case names of the fields this operation reads or writes, or None
        if it cannot be known (RawSQL)."""
        read = _fields_referenced(self.where) if self.where is not None else set()
        return read

    def references_field(self, model_name, name, app_label):
        if not self.references_model(model_name, app_label):
            return False
        fields = self._fields_read()
        return fields is None or name.lower() in fields

    def state_forwards(self, app_label, state):
        pass

    def _allowed(self, alias, app_label, model):
        """Routers decide as for the model's own operations; hints are passed
        to allow_migrate as RunSQL and RunPython pass theirs."""
        from django.db import router

        if not self.hints:
            return self.allow_migrate_model(alias, model)
        if not model._meta.can_migrate(alias):
            return False
        hints = dict(self.hints)
        hints.setdefault("model_name", model._meta.model_name)
        hints.setdefault("model", model)
        return router.allow_migrate(alias, app_label, **hints)

    def _target(self, app_label, schema_editor, to_state):
        """The model to run against, or None when this database is not migrated;
        refuses before anything is sent when the CALL could not commit."""
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self._allowed(schema_editor.connection.alias, app_label, model):
            return None
        _require_postgresql(schema_editor.connection, self)
        _require_non_atomic(schema_editor, self, app_label, self.procedure)
        return model

    def _options(self):
        """The procedure's arguments after `where`: batch_size and pause_ms
        always (as SafeBackfill), the others only when given, so the
        procedure's defaults apply."""
        args = ["batch_size => %s", "pause_ms => %s"]
        params = [self.batch_size, self.pause_ms]
        # (A timedelta is adapted as an interval already; text is cast.)
        lag_cast = "::interval" if isinstance(self.max_replica_lag, str) else ""
        for name, value, cast in (("target_batch_ms", self.target_batch_ms, ""),
                                  ("max_replica_lag", self.max_replica_lag, lag_cast),
                                  ("workers", self.workers, ""),
                                  ("resume", self.resume, "")):
            if value is not None:
                args.append("%s => %%s%s" % (name, cast))
                params.append(bool(value) if name == "resume" else value)
        if self.dry_run:
            args.append("dry_run => %s")
            params.append(True)
        return args, params

    def _call(self, schema_editor, model, args, params):
        """CALL <procedure>(tbl, <args>, <options>) relaying its NOTICEs."""
        options, option_params = self._options()
        sql = "CALL %s(%s)" % (self.procedure, ", ".join(
            ["tbl => %s::regclass"] + args + options))
        # The table goes in quoted: regclass reads it like an identifier in SQL.
        _execute_showing_notices(
            schema_editor, sql, [schema_editor.quote_name(model._meta.db_table)] + params + option_params)

    def _say(self, schema_editor, text):
        """A line in the migrate output (not in sqlmigrate's)."""
        if schema_editor.collect_sql:
            return
        sys.stdout.write("\n    %s\n" % text)
        sys.stdout.flush()

    def _compiled_where(self, model, connection):
        """(where text or None, True) or (None, False) when no row can match."""
        try:
            return compile_where(model, self.where, connection, type(self).__name__), True
        except _NoRowMatches:
            return None, False

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if self.reverse_code is None:
            self._reverse_without_code(app_label, schema_editor)
            return
        from django.db import router

        from_state.clear_delayed_apps_cache()
        if router.allow_migrate(schema_editor.connection.alias, app_label, **self.hints):
            self.reverse_code(from_state.apps, schema_editor)

    def describe_options(self):
        return "in batches of %d%s" % (self.batch_size, ", dry run" if self.dry_run else "")


class SafeUpdate(_RowsOperation):
    """
    SafeUpdate(model_name, set, where=None, batch_size=10000, pause_ms=0,
               target_batch_ms=None, max_replica_lag=None, workers=None,
               resume=None, dry_run=False, reverse_code=None, hints=None)

    UPDATE the rows of `model_name` that match `where` in batches of
    `batch_size` rows, each committed on its own (CALL safe_update):

      set     {field name: value}, as QuerySet.update(**set) takes it: a
              constant (converted by the field, e.g. "EUR", a date, None) or
              a Django expression over the model's own columns (F("price") *
              100, Lower("email"), Case(When(...)), Cast, Value, RawSQL).
              Columns by their db_column; the primary key cannot be set.
      where   None (every row), a Q object (Q(currency="eur") |
              ~Q(email=Lower("email"))), or a boolean expression
              (ExpressionWrapper(Q(...), output_field=BooleanField()),
              RawSQL).  Write it so that an updated row no longer matches
              (the idempotent form): running the migration again is then a
              no-op.

    Both are compiled with the model's query compiler before anything is
    sent, their parameters quoted by the database driver, and each goes to
    the server as one query parameter, which the extension parses and
    checks against the table before any row changes.  Joins, aggregates,
    window expressions and subqueries are refused (UnsupportedExpressionError);
    other tables can be read in RawSQL.  A where that Django knows matches
    no row (Q(id__in=[])) sends no CALL.

    target_batch_ms, max_replica_lag ("5s" or a timedelta), workers and
    resume are passed only when given (the procedure's defaults apply
    otherwise); dry_run=True counts the rows that match, per batch, and
    changes nothing.  Needs atomic = False on the migration.

    Backwards: nothing is written back (the old values are not known) and
    the migrate output says so; or reverse_code(apps, schema_editor), as
    RunPython's, when given.
    """

    reversible = True
    procedure = "safe_update"

    def __init__(self, model_name, set, where=None, batch_size=10000, pause_ms=0,
                 target_batch_ms=None, max_replica_lag=None, workers=None, resume=None,
                 dry_run=False, reverse_code=None, hints=None):
        from django.db.models import Q

        if not isinstance(set, dict) or not set:
            raise ValueError("SafeUpdate: set must be a dict {field name: value or "
                             "expression} with at least one field, not %r" % (set,))
        for name, value in set.items():
            if not isinstance(name, str):
                raise ValueError("SafeUpdate: set's keys are field names, not %r" % (name,))
            if isinstance(value, Q) or hasattr(value, "resolve_expression"):
                _check_expression_shape(value, "SafeUpdate: set[%r]" % name)
        if isinstance(where, Q) and not where:
            where = None        # Q(): every row
        self.set = dict(set)
        self._init_rows(model_name, where, batch_size, pause_ms, target_batch_ms,
                        max_replica_lag, workers, resume, dry_run, reverse_code, hints)

    def _fields_read(self):
        fields = super()._fields_read()
        for name, value in self.set.items():
            if fields is None:
                break
            fields.add(name.lower())
            if hasattr(value, "resolve_expression"):
                read = _fields_referenced(value)
                fields = None if read is None else fields | read
        return fields

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = self._target(app_label, schema_editor, to_state)
        if model is None:
            return
        connection = schema_editor.connection
        # Both compiled (and refused if need be) before anything is sent.
        set_sql = compile_set(model, self.set, connection)
        where_sql, can_match = self._compiled_where(model, connection)
        if not can_match:
            self._say(schema_editor, "SafeUpdate: %s: where=%s matches no row; nothing to do"
                      % (model._meta.db_table, _describe(self.where)))
            return
        args, params = ["set => %s"], [set_sql]
        if where_sql is not None:
            args.append('"where" => %s')
            params.append(where_sql)
        self._call(schema_editor, model, args, params)

    def _reverse_without_code(self, app_label, schema_editor):
        self._say(schema_editor, "SafeUpdate: %s.%s: not undone: the updated rows keep their "
                  "new values (give reverse_code= to undo it)" % (app_label, self.model_name))

    def describe(self):
        return "Update %s: set %s%s %s (safe_update)" % (
            self.model_name, ", ".join(self.set),
            "" if self.where is None else " where %s" % _describe(self.where),
            self.describe_options())

    @property
    def migration_name_fragment(self):
        return "update_%s" % self.model_name_lower


class SafeDelete(_RowsOperation):
    """
    SafeDelete(model_name, where, batch_size=10000, pause_ms=0,
               target_batch_ms=None, max_replica_lag=None, workers=None,
               resume=None, dry_run=False, reverse_code=None, hints=None)

    DELETE the rows of `model_name` that match `where` (required: a Q object
    or a boolean expression, compiled as for SafeUpdate) in batches of
    `batch_size` rows, each committed on its own (CALL safe_delete).  A
    where that matches every row (Q()) is refused: that is TRUNCATE.  No
    cascade is emulated: the database's own foreign keys (ON DELETE) and
    triggers act, Django's on_delete handlers and signals do not.

    A delete cannot be undone: the operation is irreversible (migrating
    back over it fails, as for RunSQL without reverse_sql) unless
    reverse_code(apps, schema_editor) is given, as RunPython's;
    reverse_code=RunPython.noop lets the migration be unapplied while the
    rows stay deleted.  Needs atomic = False on the migration.
    """

    procedure = "safe_delete"

    def __init__(self, model_name, where, batch_size=10000, pause_ms=0,
                 target_batch_ms=None, max_replica_lag=None, workers=None, resume=None,
                 dry_run=False, reverse_code=None, hints=None):
        from django.db.models import Q

        if where is None or (isinstance(where, Q) and not where):
            raise ValueError(
                "SafeDelete needs where= (a Q object or a boolean expression); "
                "to delete every row, use TRUNCATE (where=%s)" % (_describe(where),))
        self._init_rows(model_name, where, batch_size, pause_ms, target_batch_ms,
                        max_replica_lag, workers, resume, dry_run, reverse_code, hints)

    @property
    def reversible(self):
        return self.reverse_code is not None

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = self._target(app_label, schema_editor, to_state)
        if model is None:
            return
        where_sql, can_match = self._compiled_where(model, schema_editor.connection)
        if not can_match:
            self._say(schema_editor, "SafeDelete: %s: where=%s matches no row; nothing to do"
                      % (model._meta.db_table, _describe(self.where)))
            return
        if where_sql is None:
            raise UnsupportedExpressionError(
                "SafeDelete: where=%s matches every row of %s: use TRUNCATE. Nothing "
                "was changed." % (_describe(self.where), model._meta.db_table))
        self._call(schema_editor, model, ['"where" => %s'], [where_sql])

    def _reverse_without_code(self, app_label, schema_editor):
        # Not reached: Django refuses to unapply an irreversible operation.
        raise NotImplementedError("SafeDelete cannot be reversed without reverse_code")

    def describe(self):
        return "Delete from %s where %s %s (safe_delete)" % (
            self.model_name, _describe(self.where), self.describe_options())

    @property
    def migration_name_fragment(self):
        return "delete_%s" % self.model_name_lower
