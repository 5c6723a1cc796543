"""
Compiles the expressions test_migrations.py checks (SafeBackfill's
expression=) for opsdemo.Person and prints one JSON object per case:
{"case": name, "sql": text} or {"case": name, "error": class, "message": text}.
Run by test_migrations.py with the test's database settings; it connects
only for the driver's quoting (mogrify), and the last case records every
statement a refused operation sends (none may be).
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproject.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, models  # noqa: E402
from django.db.models import Case, F, Max, Subquery, Sum, Value, When, Window  # noqa: E402
from django.db.models.expressions import OuterRef, RawSQL  # noqa: E402
from django.db.models.functions import Cast, Concat, Lower, RowNumber  # noqa: E402
from django.db.migrations.loader import MigrationLoader  # noqa: E402

from opsdemo.models import Account, Person  # noqa: E402
from safe_backfill_ops import SafeBackfill, compile_expression  # noqa: E402


class Customer(Person):
    """Multi-table inheritance, only to compile against (never migrated):
    the fields of Person live in the parent's table."""
    nickname = models.CharField(max_length=20, null=True)

    class Meta:
        app_label = "opsdemo"


def report(case, build):
    """build() -> SQL text; an exception is reported as the case's result."""
    try:
        out = {"case": case, "sql": build()}
    except Exception as exc:
        out = {"case": case, "error": type(exc).__name__, "message": str(exc)}
    print(json.dumps(out))


def compiled(expression):
    # As the operation does it: checked when created, compiled when it runs.
    SafeBackfill("person", "display_name", expression=expression)
    return compile_expression(Person, expression, connection)


CASES = {
    "lower": lambda: Lower("email"),
    "concat": lambda: Concat("first_name", Value(" "), "last_name",
                             output_field=models.CharField()),
    "case_when": lambda: Case(When(vip=True, then=Value("pro")), default=Value("free"),
                              output_field=models.CharField()),
    "cast": lambda: Cast("id", output_field=models.CharField()),
    "f": lambda: F("first_name"),
    "foreign_key_column": lambda: F("account"),
    "value_with_quote": lambda: Value("O'Brien'); DROP TABLE x; --"),
    "arithmetic_with_percent": lambda: F("id") % 7 * 2 + Value(1),
    "rawsql_params": lambda: RawSQL("upper(last_name) || %s || %s", ["'s 100% ", 7]),
    "rawsql_percent_no_params": lambda: RawSQL("first_name || '%%'", []),
    # refused
    "join": lambda: Lower("account__name"),
    "join_in_when": lambda: Case(When(account__name="x", then=Value("a")), default=Value("b"),
                                 output_field=models.CharField()),
    "unknown_field": lambda: Lower("no_such_field"),
    "aggregate": lambda: Sum("id"),
    "nested_aggregate": lambda: Lower(Max("email")),
    "window": lambda: Window(RowNumber(), order_by=F("id").asc()),
    "subquery": lambda: Subquery(Account.objects.filter(pk=OuterRef("account_id")).values("name")[:1]),
    "plain_string": lambda: "lower(email)",
    "unquotable_param": lambda: RawSQL("%s", [object()]),
}

for name, make in CASES.items():
    report(name, lambda: compiled(make()))

report("own_field_of_child_model",
       lambda: compile_expression(Customer, Lower("nickname"), connection))
report("parent_model_field",
       lambda: compile_expression(Customer, Lower("email"), connection))

report("value_and_expression",
       lambda: SafeBackfill("person", "email_lower", "x", expression=Lower("email")) and "accepted")
report("neither_value_nor_expression",
       lambda: SafeBackfill("person", "email_lower") and "accepted")


def references():
    lower = SafeBackfill("person", "email_lower", expression=Lower("email"))
    raw = SafeBackfill("person", "display_name", expression=RawSQL("first_name", []))
    return json.dumps({
        "lower_reads_email": lower.references_field("Person", "email", "opsdemo"),
        "lower_reads_first_name": lower.references_field("person", "first_name", "opsdemo"),
        "raw_reads_first_name": raw.references_field("person", "first_name", "opsdemo"),
        "lower_other_model": lower.references_field("account", "email", "opsdemo"),
    }, sort_keys=True)


report("references_field", references)


def refused_operation_sends_nothing():
    """A join found when the operation runs: refused before any statement."""
    state = MigrationLoader(connection).project_state(("opsdemo", "0007_person"))
    op = SafeBackfill("person", "display_name", expression=Lower("account__name"))
    sent = []

    def record(execute, sql, params, many, context):
        sent.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        with connection.schema_editor(atomic=False) as editor:
            try:
                op.database_forwards("opsdemo", editor, state, state)
            except Exception as exc:
                return "%s: %s | statements sent: %d" % (type(exc).__name__, exc, len(sent))
    return "not refused | statements sent: %d" % len(sent)


report("refused_when_running", refused_operation_sends_nothing)
