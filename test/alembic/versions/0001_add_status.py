"""add large_user.status and email_lower, nullable: a catalog-only change

Revision ID: 0001_add_status
Revises:
"""
from alembic import op
import sqlalchemy as sa

revision = "0001_add_status"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("large_user", sa.Column("status", sa.Text(), nullable=True))
    op.add_column("large_user", sa.Column("email_lower", sa.Text(), nullable=True))


def downgrade():
    op.drop_column("large_user", "email_lower")
    op.drop_column("large_user", "status")
