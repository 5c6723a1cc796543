"""detached_user.tier: added, and its backfill queued as a detached run

Inside the migration's transaction (the default): the run starts when it
commits, and the migration returns at once.

Revision ID: 0004_detached_tier
Revises: 0003_status_not_null
"""
import os

import sqlalchemy as sa
from alembic import op

from safe_backfill_alembic import safe_backfill

revision = "0004_detached_tier"
down_revision = "0003_status_not_null"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("detached_user", sa.Column("tier", sa.Text(), nullable=True))
    safe_backfill(op, "detached_user", "tier", "basic", detached=True,
                  batch_size=int(os.environ.get("SAFE_BACKFILL_BATCH_SIZE", "10000")))


def downgrade():
    op.drop_column("detached_user", "tier")
