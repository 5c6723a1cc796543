import datetime

from django.conf import settings
from django.db import migrations
from django.db.models import Q

from safe_backfill_ops import SafeDelete


class Migration(migrations.Migration):
    # Required by SafeDelete, which commits after every batch.
    atomic = settings.OPSDEMO_FORCE_ATOMIC

    dependencies = [("opsdemo", "0013_normalize_orders")]

    operations = [
        # Orders from before July 2023, except those in euros.  Irreversible
        # (no reverse_code): the deleted rows cannot come back.
        SafeDelete("order",
                   where=Q(created_at__lt=datetime.datetime(2023, 7, 1, tzinfo=datetime.timezone.utc))
                   & ~Q(currency="EUR"),
                   batch_size=settings.SAFE_BACKFILL_BATCH_SIZE),
    ]
