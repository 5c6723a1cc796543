from django.db import migrations

from safe_backfill_ops import EnsureBackfillFinished, SafeSetNotNull


class Migration(migrations.Migration):
    # Deploy 2: wait for the detached run of 0010, then NOT NULL; both
    # commit as they go.
    atomic = False

    dependencies = [("opsdemo", "0010_backfill_ticket_priority")]

    operations = [
        EnsureBackfillFinished("ticket", "priority"),
        SafeSetNotNull("ticket", "priority"),
    ]
