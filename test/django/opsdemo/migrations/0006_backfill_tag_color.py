from django.conf import settings
from django.db import migrations

from safe_backfill_ops import SafeBackfill


class Migration(migrations.Migration):
    # Required: safe_backfill commits after every batch and around its NOT NULL steps.
    atomic = settings.OPSDEMO_FORCE_ATOMIC

    dependencies = [("opsdemo", "0005_tag")]

    operations = [
        # Fill, then NOT NULL through a validated CHECK, in one CALL; the
        # state becomes null=False.
        SafeBackfill("tag", "color", "red", batch_size=settings.SAFE_BACKFILL_BATCH_SIZE,
                     set_not_null=True),
    ]
