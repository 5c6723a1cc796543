from django.conf import settings
from django.db import migrations, models
from django.db.models.expressions import RawSQL
from django.db.models.functions import Lower

from safe_backfill_ops import SafeBackfill


class Migration(migrations.Migration):
    # Required by SafeBackfill, which commits after every batch.
    atomic = settings.OPSDEMO_FORCE_ATOMIC

    dependencies = [("opsdemo", "0007_person")]

    operations = [
        # A Django expression on another column of the row, compiled by the
        # model's query compiler: LOWER("opsdemo_Person"."eMail").  Then
        # NOT NULL; the state becomes `field`.
        SafeBackfill("person", "email_lower", expression=Lower("email"),
                     batch_size=settings.SAFE_BACKFILL_BATCH_SIZE, set_not_null=True,
                     field=models.CharField(max_length=100)),
        # SQL text of your own, with a parameter the driver quotes (it has a
        # quote and a percent sign).  NULL where last_name is NULL.
        SafeBackfill("person", "display_name",
                     expression=RawSQL("upper(last_name) || ', ' || first_name || %s",
                                       [" (it's 100%)"]),
                     batch_size=settings.SAFE_BACKFILL_BATCH_SIZE),
    ]
