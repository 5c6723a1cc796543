"""large_user.status and email_lower NOT NULL, without a scan under ACCESS EXCLUSIVE

Revision ID: 0003_status_not_null
Revises: 0002_backfill_status
"""
from alembic import op

from safe_backfill_alembic import safe_set_not_null

revision = "0003_status_not_null"
down_revision = "0002_backfill_status"
branch_labels = None
depends_on = None


def upgrade():
    safe_set_not_null(op, "large_user", "status")
    safe_set_not_null(op, "large_user", "email_lower")


def downgrade():
    # DROP NOT NULL: a catalog-only change.
    op.alter_column("large_user", "email_lower", nullable=True)
    op.alter_column("large_user", "status", nullable=True)
