"""change_user: currency 'eur' written 'EUR', with a note; reversed by downgrade

safe_update with constants as the values (a quote, % and a backslash in
one) and a SQLAlchemy comparison as where.  The note marks the rows it
changed (note is NULL before), which is what lets downgrade() set them back.

Revision ID: 0007_change_currency
Revises: 0006_change_rows
"""
import os

import sqlalchemy as sa
from alembic import op

from safe_backfill_alembic import safe_update

revision = "0007_change_currency"
down_revision = "0006_change_rows"
branch_labels = None
depends_on = None

BATCH_SIZE = int(os.environ.get("SAFE_BACKFILL_CHANGE_BATCH_SIZE", "500"))
NOTE = "it's 100% \\ ok"


def upgrade():
    safe_update(op, "change_user", {"currency": "EUR", "note": NOTE},
                where=sa.column("currency") == "eur", batch_size=BATCH_SIZE)


def downgrade():
    safe_update(op, "change_user", {"currency": "eur", "note": None},
                where=sa.column("note") == NOTE, batch_size=BATCH_SIZE)
