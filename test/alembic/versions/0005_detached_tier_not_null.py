"""detached_user.tier NOT NULL, once its detached backfill finished

Revision ID: 0005_detached_tier_not_null
Revises: 0004_detached_tier
"""
from alembic import op

from safe_backfill_alembic import ensure_backfill_finished, safe_set_not_null

revision = "0005_detached_tier_not_null"
down_revision = "0004_detached_tier"
branch_labels = None
depends_on = None


def upgrade():
    ensure_backfill_finished(op, "detached_user", "tier", timeout="10 min")
    safe_set_not_null(op, "detached_user", "tier")


def downgrade():
    op.alter_column("detached_user", "tier", nullable=True)
