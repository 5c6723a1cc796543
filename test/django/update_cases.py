"""
Compiles the set= and where= arguments test_migrations.py checks (SafeUpdate,
SafeDelete) for opsdemo.Order and opsdemo.Person and prints one JSON object
per case: {"case": name, "sql": text} or {"case": name, "error": class,
"message": text}.  Run by test_migrations.py with the test's database
settings; it connects only for the driver's quoting (mogrify), and the last
cases record every statement an operation sends (none may be, for a refusal
or a where that matches no row).
"""
import datetime
import decimal
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproject.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, models  # noqa: E402
from django.db.models import Case, F, Max, Q, Sum, Value, When  # noqa: E402
from django.db.models.expressions import ExpressionWrapper, RawSQL  # noqa: E402
from django.db.models.functions import Lower, Upper  # noqa: E402
from django.db.migrations.loader import MigrationLoader  # noqa: E402

from opsdemo.models import Account, Order, Person  # noqa: E402
from safe_backfill_ops import SafeDelete, SafeUpdate, compile_set, compile_where  # noqa: E402

UTC = datetime.timezone.utc


class Customer(Person):
    """Multi-table inheritance, only to compile against (never migrated)."""
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


def set_text(values, model=Order):
    # As the operation does it: checked when created, compiled when it runs.
    SafeUpdate(model.__name__.lower(), set=values)
    return compile_set(model, values, connection)


def where_text(where, model=Order, op=SafeUpdate):
    if op is SafeDelete:
        SafeDelete(model.__name__.lower(), where=where)
    else:
        SafeUpdate(model.__name__.lower(), set={"email": "x"}, where=where)
    return compile_where(model, where, connection, op.__name__)


SET_CASES = {
    "set_constant_db_column": lambda: {"currency": "EUR"},
    "set_constant_quote": lambda: {"email": "o'brien@example.com"},
    "set_null": lambda: {"price_cents": None},
    "set_decimal": lambda: {"price": decimal.Decimal("1.50")},
    "set_datetime": lambda: {"created_at": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)},
    "set_upper_lower": lambda: {"currency": Upper("currency"), "email": Lower("email")},
    "set_f_arithmetic": lambda: {"price_cents": F("price_cents") + 1},
    "set_case_when": lambda: {"currency": Case(When(currency="eur", then=Value("EUR")),
                                               default=F("currency"))},
    "set_rawsql": lambda: {"email": RawSQL("lower(email) || %s", ["%'"])},
    # refused
    "set_primary_key": lambda: {"id": 1},
    "set_unknown_field": lambda: {"no_such_field": 1},
    "set_aggregate": lambda: {"price_cents": Sum("price_cents")},
    "set_q": lambda: {"email": Q(currency="EUR")},
    "set_empty": lambda: {},
}

WHERE_CASES = {
    "where_in_or_negated": lambda: Q(currency__in=["eur", "usd"]) | ~Q(email=Lower("email")),
    "where_date": lambda: Q(created_at__lt=datetime.datetime(2023, 7, 1, tzinfo=UTC)),
    "where_negated_nullable": lambda: ~Q(price_cents=100),
    "where_isnull": lambda: Q(price_cents__isnull=True),
    "where_rawsql": lambda: RawSQL("created_at < %s::timestamptz - %s::interval",
                                   ["2024-01-01 00:00+00", "90 days"]),
    "where_expression_wrapper": lambda: ExpressionWrapper(Q(price__gt=F("price_cents")),
                                                          output_field=models.BooleanField()),
    "where_value_with_quote": lambda: Q(email="o'brien'); DROP TABLE x; --"),
    "where_empty_q_update": lambda: Q(),
    "where_matches_nothing": lambda: Q(id__in=[]),
    # refused
    "where_string": lambda: "currency = 'eur'",
    "where_aggregate": lambda: Q(price__gt=Max("price")),
    "where_subquery": lambda: Q(id__in=Order.objects.filter(currency="EUR").values("id")),
}

for name, make in SET_CASES.items():
    report(name, lambda: set_text(make()))
for name, make in WHERE_CASES.items():
    report(name, lambda: where_text(make()))

report("where_join", lambda: where_text(Q(account__name="x"), model=Person))
report("set_join", lambda: set_text({"email": Lower("account__name")}, model=Person))
report("set_parent_model_field", lambda: compile_set(Customer, {"email": "x"}, connection))
report("set_reverse_relation", lambda: compile_set(Account, {"person": None}, connection))
report("delete_without_where", lambda: SafeDelete("order", where=None) and "accepted")
report("delete_empty_q", lambda: SafeDelete("order", where=Q()) and "accepted")
report("delete_where_date", lambda: where_text(
    Q(created_at__lt=datetime.datetime(2023, 7, 1, tzinfo=UTC)) & ~Q(currency="EUR"), op=SafeDelete))


def references():
    update = SafeUpdate("order", set={"price_cents": F("price") * 100}, where=Q(currency="EUR"))
    delete = SafeDelete("order", where=RawSQL("true", []))
    return json.dumps({
        "update_reads_price": update.references_field("Order", "price", "opsdemo"),
        "update_writes_price_cents": update.references_field("order", "price_cents", "opsdemo"),
        "update_where_reads_currency": update.references_field("order", "currency", "opsdemo"),
        "update_email": update.references_field("order", "email", "opsdemo"),
        "delete_rawsql_any": delete.references_field("order", "email", "opsdemo"),
        "other_model": update.references_field("person", "price", "opsdemo"),
        "delete_reversible": delete.reversible,
        "delete_noop_reversible": SafeDelete("order", where=Q(id=1),
                                             reverse_code=lambda apps, se: None).reversible,
        "update_reversible": update.reversible,
    }, sort_keys=True)


report("references_field", references)


def statements_sent(op, app_label="opsdemo", target=("opsdemo", "0012_order")):
    """Run op's database_forwards; what it raised or printed, and how many
    statements it sent."""
    state = MigrationLoader(connection).project_state(target)
    sent = []

    def record(execute, sql, params, many, context):
        sent.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        with connection.schema_editor(atomic=False) as editor:
            try:
                op.database_forwards(app_label, editor, state, state)
                result = "ran"
            except Exception as exc:
                result = "%s: %s" % (type(exc).__name__, exc)
    return "%s | statements sent: %d" % (result, len(sent))


report("refused_when_running", lambda: statements_sent(
    SafeUpdate("person", set={"email": "x"}, where=Q(account__name="x")),
    target=("opsdemo", "0007_person")))
report("delete_every_row_when_running", lambda: statements_sent(
    SafeDelete("order", where=~Q(id__in=[]))))
report("matches_nothing_sends_nothing", lambda: statements_sent(
    SafeDelete("order", where=Q(id__in=[]))))


def collected_sql(op, target=("opsdemo", "0012_order")):
    """The statements op would run, as sqlmigrate collects them."""
    state = MigrationLoader(connection).project_state(target)
    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        op.database_forwards("opsdemo", editor, state, state)
    return " ".join(editor.collected_sql)


report("options_passed", lambda: collected_sql(SafeUpdate(
    "order", set={"currency": "EUR"}, where=Q(currency="eur"), batch_size=500, pause_ms=10,
    target_batch_ms=200, max_replica_lag=datetime.timedelta(seconds=5), workers=2,
    resume=False, dry_run=True)))
report("no_where_update", lambda: collected_sql(SafeUpdate("order", set={"price_cents": None})))
