from django.conf import settings
from django.db import migrations

from safe_backfill_ops import SafeBackfill


class Migration(migrations.Migration):
    # Required by SafeBackfill, which commits after every batch.
    # (OPSDEMO_FORCE_ATOMIC is a test-only switch showing the refusal.)
    atomic = settings.OPSDEMO_FORCE_ATOMIC

    dependencies = [("opsdemo", "0002_account_plan")]

    operations = [
        SafeBackfill("account", "plan", "free", batch_size=settings.SAFE_BACKFILL_BATCH_SIZE),
    ]
