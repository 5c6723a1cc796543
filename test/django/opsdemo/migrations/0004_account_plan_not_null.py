from django.conf import settings
from django.db import migrations, models

from safe_backfill_ops import SafeSetNotNull


class Migration(migrations.Migration):
    # Required by SafeSetNotNull, which commits between its steps.
    # (OPSDEMO_FORCE_ATOMIC is a test-only switch showing the refusal.)
    atomic = settings.OPSDEMO_FORCE_ATOMIC

    dependencies = [("opsdemo", "0003_backfill_account_plan")]

    operations = [
        # The state becomes this field (null=False, with its default) and the
        # database column NOT NULL, without a scanning SET NOT NULL.
        SafeSetNotNull(
            "account", "plan",
            field=models.CharField(db_column="planCode", default="free", max_length=20),
        ),
    ]
