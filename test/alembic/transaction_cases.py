"""
safe_backfill_alembic's refusals where the migration's transaction cannot be
left, driven through Alembic's own MigrationContext and Operations (as
env.py and a migration script would): an operation before the helper in the
same transaction, and a transaction env.py began itself (for safe_backfill,
safe_set_not_null, safe_update and safe_delete).  Each must raise
MigrationTransactionError before anything is sent and leave large_user as it
was.  Prints TAP lines ("ok - ..." / "not ok - ...").
"""
import os
import sys

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "contrib", "alembic"))
import safe_backfill_alembic as sba  # noqa: E402


def ok(condition, description, details=""):
    print("%s - %s" % ("ok" if condition else "not ok", description))
    if not condition:
        for line in str(details).splitlines():
            print("#   " + line)


def columns(conn, table="large_user"):
    return sorted(r[0] for r in conn.execute(sa.text(
        "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) "
        "AND attnum > 0 AND NOT attisdropped"), {"t": table}))


def refused(run):
    """The MigrationTransactionError's message, or what happened instead."""
    try:
        run()
    except sba.MigrationTransactionError as exc:
        return True, str(exc)
    except Exception as exc:  # noqa: BLE001
        return False, "%s: %s" % (type(exc).__name__, exc)
    return False, "it ran"


def main():
    engine = sa.create_engine("postgresql+psycopg2://", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        before = columns(conn)

        # A migration that adds a column, then backfills it.
        context = MigrationContext.configure(conn)
        op = Operations(context)

        def add_then_backfill():
            with context.begin_transaction():
                op.add_column("large_user", sa.Column("added_first", sa.Text()))
                sba.safe_backfill(op, "large_user", "added_first", "x")
        was_refused, message = refused(add_then_backfill)
        ok(was_refused and "has already changed something" in message
           and "first in a migration of its own" in message,
           "alembic: an add_column before safe_backfill in the same transaction is refused, "
           "saying to put the backfill first in a migration of its own", message)
        ok(columns(conn) == before, "alembic: ... and the add_column was rolled back with it",
           "columns now %r" % columns(conn))

        # env.py's own transaction around the migrations.
        def inside_env_transaction():
            with conn.begin():
                own = MigrationContext.configure(conn)
                with own.begin_transaction():
                    sba.safe_set_not_null(Operations(own), "large_user", "email")
        was_refused, message = refused(inside_env_transaction)
        ok(was_refused and "env.py began itself" in message
           and "context.begin_transaction()" in message,
           "alembic: safe_set_not_null in a transaction env.py began itself is refused, "
           "saying to use context.begin_transaction()", message)

        # safe_update and safe_delete refuse the same, and leave change_user as seeded.
        def add_then_update():
            with context.begin_transaction():
                op.add_column("change_user", sa.Column("added_first", sa.Text()))
                sba.safe_update(op, "change_user", {"currency": "EUR"},
                                where=sa.column("currency") == "eur", batch_size=500)
        was_refused, message = refused(add_then_update)
        ok(was_refused and "safe_update(change_user) cannot run here" in message
           and "Put safe_update first in a migration of its own" in message
           and "transaction_per_migration=True" in message,
           "alembic: an add_column before safe_update in the same transaction is refused, "
           "saying to put it first in a migration of its own", message)

        def delete_inside_env_transaction():
            with conn.begin():
                own = MigrationContext.configure(conn)
                with own.begin_transaction():
                    sba.safe_delete(Operations(own), "change_user", sa.column("kind") == "spam",
                                    batch_size=500)
        was_refused, message = refused(delete_inside_env_transaction)
        ok(was_refused and "safe_delete(change_user) cannot run here" in message
           and "context.begin_transaction()" in message,
           "alembic: safe_delete in a transaction env.py began itself is refused, "
           "saying to use context.begin_transaction()", message)
        differences = conn.execute(sa.text(
            "SELECT count(*) FROM ((TABLE change_user EXCEPT ALL TABLE change_user_orig) "
            "UNION ALL (TABLE change_user_orig EXCEPT ALL TABLE change_user)) d")).scalar()
        ok(differences == 0 and "added_first" not in columns(conn, "change_user"),
           "alembic: ... change_user is as seeded, the add_column rolled back",
           "%d rows differ, columns %r" % (differences, columns(conn, "change_user")))

        # detached=True with set_not_null=True: refused before anything is sent
        def detached_not_null():
            with context.begin_transaction():
                sba.safe_backfill(op, "large_user", "email", "x", detached=True, set_not_null=True)
        try:
            detached_not_null()
            outcome = "it ran"
        except ValueError as exc:
            outcome = str(exc)
        ok("does not take set_not_null=True" in outcome,
           "alembic: safe_backfill(detached=True, set_not_null=True) is refused with ValueError",
           outcome)

        # ensure_backfill_finished on a column no detached run filled
        def ensure_without_run():
            with context.begin_transaction():
                sba.ensure_backfill_finished(op, "large_user", "email")
        try:
            ensure_without_run()
            outcome = "it ran"
        except RuntimeError as exc:
            outcome = str(exc)
        ok("no detached run of this column was found" in outcome,
           "alembic: ensure_backfill_finished with no detached run of the column fails saying so",
           outcome)


main()
