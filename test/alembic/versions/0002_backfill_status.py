"""backfill large_user.status with a constant and email_lower with lower(email)

Each batch commits on its own, outside the migration's transaction
(safe_backfill_alembic runs the CALLs in an autocommit block).

Revision ID: 0002_backfill_status
Revises: 0001_add_status
"""
import os

from alembic import op
import sqlalchemy as sa

from safe_backfill_alembic import safe_backfill

revision = "0002_backfill_status"
down_revision = "0001_add_status"
branch_labels = None
depends_on = None

BATCH_SIZE = int(os.environ.get("SAFE_BACKFILL_BATCH_SIZE", "10000"))


def upgrade():
    safe_backfill(op, "large_user", "status", "active", batch_size=BATCH_SIZE)
    safe_backfill(op, "large_user", "email_lower",
                  expression=sa.func.lower(sa.column("email")), batch_size=BATCH_SIZE)


def downgrade():
    # The values stay: which rows were NULL before is not known; reversing
    # 0001 drops the columns.
    pass
