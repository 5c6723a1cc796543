from django.conf import settings
from django.db import migrations

BATCH_SIZE = settings.SAFE_BACKFILL_BATCH_SIZE  # 10000 unless configured


class Migration(migrations.Migration):
    """
    Fill the NULLs of status in committed batches with CALL safe_backfill.

    atomic = False is required: Django would otherwise wrap the migration in
    one transaction, and safe_backfill, which commits after every batch,
    refuses to run inside one (SQLSTATE 2D000).  Each CALL below runs on its
    own, in autocommit, and other sessions keep reading and writing the table
    between (and during) the batches.

    Reverse: a no-op.  The values stay; reversing 0002 drops the column.
    """

    # DEMOAPP_FORCE_ATOMIC is a test-only switch that shows the error you get
    # without atomic = False.  In your own migration just write atomic = False.
    atomic = settings.DEMOAPP_FORCE_ATOMIC

    dependencies = [("demoapp", "0002_largeuser_status_smalluser_status")]

    operations = [
        migrations.RunSQL(
            sql=[("CALL safe_backfill('small_user', 'status', 'active', %s)", [BATCH_SIZE])],
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.RunSQL(
            sql=[("CALL safe_backfill('large_user', 'status', 'active', %s)", [BATCH_SIZE])],
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
