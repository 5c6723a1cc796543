"""change_user: price_cents recomputed where it is wrong, spam rows deleted

safe_update with a SQLAlchemy expression as the value and SQL text as
where; safe_delete with a SQLAlchemy expression as where.  Each batch
commits on its own, outside the migration's transaction.  Not reversible:
downgrade() says so and changes nothing.

Revision ID: 0006_change_rows
Revises: 0005_detached_tier_not_null
"""
import os

import sqlalchemy as sa
from alembic import op

from safe_backfill_alembic import safe_delete, safe_update

revision = "0006_change_rows"
down_revision = "0005_detached_tier_not_null"
branch_labels = None
depends_on = None

BATCH_SIZE = int(os.environ.get("SAFE_BACKFILL_CHANGE_BATCH_SIZE", "500"))


def upgrade():
    safe_update(op, "change_user",
                {"price_cents": sa.cast(sa.column("price") * 100, sa.Integer)},
                where="price_cents IS DISTINCT FROM (price * 100)::int",
                batch_size=BATCH_SIZE)
    safe_delete(op, "change_user",
                sa.and_(sa.column("kind") == "spam", sa.column("price") > 10),
                batch_size=BATCH_SIZE)


def downgrade():
    # The deleted rows are gone and the old price_cents were not kept.
    print("0006_change_rows: not reversed: the rows it deleted are gone and the "
          "price_cents it recomputed stay")
