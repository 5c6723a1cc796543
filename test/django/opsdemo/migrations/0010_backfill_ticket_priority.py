from django.conf import settings
from django.db import migrations

from safe_backfill_ops import SafeBackfill


class Migration(migrations.Migration):
    # Deploy 1 of the two-deploy pattern.  Atomic (Django's default) is fine:
    # safe_backfill_start only queues the run, whose background worker starts
    # once this migration's transaction commits; migrate returns at once.
    dependencies = [("opsdemo", "0009_ticket")]

    operations = [
        SafeBackfill("ticket", "priority", 3, batch_size=settings.SAFE_BACKFILL_BATCH_SIZE,
                     detached=True),
    ]
