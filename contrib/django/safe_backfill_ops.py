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
  * pass every value as a query parameter;
  * print the extension's NOTICEs (progress lines, summary) to the
    migration's output while the CALL runs (psycopg2 and psycopg 3).

SafeBackfill(..., set_not_null=True) does both in one CALL.

Reversing: SafeBackfill writes nothing back (the values stay; the migration
that added the column drops it when reversed further).  SafeSetNotNull, and
SafeBackfill with set_not_null, run ALTER COLUMN ... DROP NOT NULL backwards,
a catalog-only change.

Requires the safe_backfill extension in the database
(CREATE EXTENSION safe_backfill, e.g. with
django.contrib.postgres.operations.CreateExtension in an earlier migration).
Copy this file into your project, or put contrib/django on sys.path.
"""

import sys

from django.db import NotSupportedError
from django.db.migrations.operations import AlterField
from django.db.migrations.operations.base import Operation

__all__ = ["SafeBackfill", "SafeSetNotNull", "AtomicMigrationError"]


class AtomicMigrationError(RuntimeError):
    """The operation was asked to run inside a transaction block."""


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
    SafeBackfill(model_name, name, value, batch_size=10000, pause_ms=0,
                 set_not_null=False, field=None)

    Fill the NULLs of field `name` of `model_name` with `value` in batches
    of `batch_size` rows, each committed on its own (CALL safe_backfill).
    The value is converted by the field (get_db_prep_save) and sent as a
    query parameter; the extension then checks it against the column's type
    before any row is written.  Needs atomic = False on the migration.

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

    def __init__(self, model_name, name, value, batch_size=10000, pause_ms=0,
                 set_not_null=False, field=None):
        if value is None:
            raise ValueError("SafeBackfill needs a value other than None")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError("batch_size must be a positive integer, not %r" % (batch_size,))
        if not isinstance(pause_ms, int) or pause_ms < 0:
            raise ValueError("pause_ms must be an integer >= 0, not %r" % (pause_ms,))
        self.model_name = model_name
        self.name = name
        self.value = value
        self.batch_size = batch_size
        self.pause_ms = pause_ms
        if field is not None and not set_not_null:
            raise ValueError("SafeBackfill: field is only used with set_not_null=True")
        if field is not None and field.null:
            raise ValueError("SafeBackfill: the new field must have null=False")
        self.set_not_null = bool(set_not_null)
        self.field = field

    def state_forwards(self, app_label, state):
        if self.set_not_null:
            _not_null_state_forwards(app_label, state, self.model_name, self.name, self.field)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        target = self._target(app_label, schema_editor, to_state)
        if target is None:
            return
        model, field = target
        value = field.get_db_prep_save(self.value, connection=schema_editor.connection)
        sql = ("CALL safe_backfill(tbl => %s::regclass, col => %s::name, "
               "value => %s, batch_size => %s, pause_ms => %s")
        # The table goes in quoted: regclass reads it like an identifier in SQL.
        params = [schema_editor.quote_name(model._meta.db_table), field.column,
                  value, self.batch_size, self.pause_ms]
        if self.set_not_null:
            sql += ", set_not_null => %s"
            params.append(True)
        _execute_showing_notices(schema_editor, sql + ")", params)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        # The values stay: which rows were NULL before is not known, and
        # writing NULL back in batches would only cost time.
        if self.set_not_null:
            _drop_not_null(schema_editor, to_state, app_label, self.model_name, self.name, self)

    def describe(self):
        return "Backfill NULL %s.%s with %r in batches of %d%s (safe_backfill)" % (
            self.model_name, self.name, self.value, self.batch_size,
            ", then NOT NULL" if self.set_not_null else "")

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

