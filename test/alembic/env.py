"""
Alembic environment of the test project: the usual online/offline pair.
Online, each migration runs in a transaction of its own
(transaction_per_migration=True), as safe_backfill_alembic needs;
ALEMBIC_TEST_ONE_TRANSACTION=1 runs them all in one transaction instead,
to test that the helpers refuse it.
"""
import os
import sys
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

HERE = os.path.dirname(os.path.abspath(__file__))
# The helpers, as a project would copy them next to env.py.
sys.path.insert(0, os.path.join(HERE, "..", "..", "contrib", "alembic"))

PER_MIGRATION = os.environ.get("ALEMBIC_TEST_ONE_TRANSACTION") != "1"
# An empty URL: psycopg2 (libpq) takes PGHOST, PGPORT, PGUSER, PGDATABASE.
URL = "postgresql+psycopg2://"

if context.config.config_file_name is not None:
    fileConfig(context.config.config_file_name)


def run_migrations_offline():
    context.configure(url=URL, literal_binds=True, transaction_per_migration=PER_MIGRATION)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    engine = create_engine(URL, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=PER_MIGRATION)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
