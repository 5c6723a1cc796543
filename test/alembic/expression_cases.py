"""
safe_backfill_alembic.compile_expression against the live connection's
dialect: each expression's SQL text, evaluated by the server, gives the value
Python expects (quotes, %, backslashes come through as written); what cannot
be written as SQL text is refused before anything is sent.  Prints TAP lines
("ok - ..." / "not ok - ...").
"""
import os
import sys

import sqlalchemy as sa

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "contrib", "alembic"))
import safe_backfill_alembic as sba  # noqa: E402


def ok(condition, description, details=""):
    print("%s - %s" % ("ok" if condition else "not ok", description))
    if not condition:
        for line in str(details).splitlines():
            print("#   " + line)


name, vip = sa.column("name"), sa.column("vip")
CASES = [
    ("a function of a column", sa.func.lower(name), "lower(name)", "it's 100% \\o/"),
    ("a string with a quote, % and a backslash",
     sa.func.concat(name, sa.literal(" it's 100% \\ ok")), None, "x it's 100% \\ ok"),
    ("arithmetic with %", sa.cast(sa.func.length(name) % 7, sa.Text), None, "1"),
    ("CASE", sa.case((vip, "pro"), else_="free"), None, "pro"),
    ("sa.text with a bound value", sa.text("upper(name) || :tail").bindparams(tail="'; --"),
     None, "X'; --"),
    ("SQL text as a str", "name || '%'", "name || '%'", "x%"),
]


def main():
    engine = sa.create_engine("postgresql+psycopg2://", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        dialect = conn.dialect
        for description, expression, text, expected in CASES:
            row_name = "it's 100% \\O/" if text == "lower(name)" else "x"
            try:
                sql = sba.compile_expression(expression, dialect)
                got = conn.execute(sa.text(
                    "SELECT (%s)::text FROM (VALUES (CAST(:n AS text), true)) AS v(name, vip)"
                    % sql.replace(":", "\\:")), {"n": row_name}).scalar()
            except Exception as exc:
                ok(False, "alembic: expression %s compiles and runs" % description, repr(exc))
                continue
            ok((text is None or sql == text) and got == expected,
               "alembic: expression %s: %s gives %r" % (description, sql, expected),
               "got %r from %s" % (got, sql))
    try:
        sba.compile_expression(sa.literal(__import__("datetime").date(2024, 1, 1)), dialect)
        ok(False, "alembic: a value with no SQL literal form is refused")
    except sba.UnsupportedExpressionError as exc:
        ok("cannot be written as SQL text" in str(exc) and "sa.cast(sa.literal(" in str(exc),
           "alembic: a value with no SQL literal form (a date) is refused, saying to cast a string",
           str(exc))
    # safe_update's set list from a mapping: constants and expressions,
    # evaluated by the server as an UPDATE of a one-row table would.
    values = {"name": "it's 100% \\ ok", "vip": None, sa.column("n"): sa.column("n") * 2 + 1}
    try:
        set_list = sba.compile_set_list(values, dialect)
        with engine.connect() as conn2, conn2.begin():
            conn2.execute(sa.text("CREATE TEMPORARY TABLE set_case (name text, vip boolean, n integer)"))
            conn2.execute(sa.text("INSERT INTO set_case VALUES ('x', true, 20)"))
            conn2.execute(sa.text("UPDATE set_case SET %s" % set_list.replace(":", "\\:")))
            got = tuple(conn2.execute(sa.text("SELECT * FROM set_case")).one())
        ok(got == ("it's 100% \\ ok", None, 41),
           "alembic: a set mapping (a quote, %% and a backslash; None; an expression) "
           "compiles to %s" % set_list, "got %r" % (got,))
    except Exception as exc:  # noqa: BLE001
        ok(False, "alembic: a set mapping compiles and runs", repr(exc))
    # An ORM model's attributes: the key by its column's name, the value
    # and where qualified by the model's schema and table.
    from sqlalchemy.orm import declarative_base
    Model = declarative_base()

    class Order(Model):
        __tablename__ = "orders"
        __table_args__ = {"schema": "sales"}
        id = sa.Column(sa.Integer, primary_key=True)
        currency = sa.Column(sa.Text)
        price = sa.Column(sa.Numeric)
    try:
        texts = (sba.compile_set_list({Order.currency: "EUR", "price": Order.price * 2}, dialect),
                 sba.compile_expression(Order.currency == "eur", dialect))
    except Exception as exc:  # noqa: BLE001
        texts = repr(exc)
    ok(texts == ("\"currency\" = 'EUR', \"price\" = sales.orders.price * 2",
                 "sales.orders.currency = 'eur'"),
       "alembic: ORM attributes as set keys, values and in where compile against the model's table",
       repr(texts))
    for description, run, expected in [
            ("safe_delete without where", lambda: sba.safe_delete(None, "change_user", None),
             "use TRUNCATE"),
            ("safe_update with an empty mapping",
             lambda: sba.compile_set_list({}, dialect), "give at least one column"),
            ("safe_update with a dict value (no SQL literal form)",
             lambda: sba.compile_set_list({"meta": {"a": 1}}, dialect),
             "cannot be written as SQL text")]:
        try:
            run()
            outcome = "it ran"
        except ValueError as exc:
            outcome = str(exc)
        ok(expected in outcome, "alembic: %s is refused before anything is sent" % description,
           outcome)
    try:
        sba.safe_backfill(None, "large_user", "status", "x", expression=sa.func.lower(name))
        ok(False, "alembic: value and expression together are refused")
    except ValueError as exc:
        ok("exactly one of value=" in str(exc),
           "alembic: value and expression together are refused before anything is sent", str(exc))


main()
