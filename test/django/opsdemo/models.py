from django.db import models


class Account(models.Model):
    """
    Exercises the reusable operations (contrib/django/safe_backfill_ops.py)
    on names that need quoting: a mixed-case table and a db_column.
    """

    name = models.CharField(max_length=100)
    # Added nullable by 0002, SafeBackfill in 0003, SafeSetNotNull in 0004.
    plan = models.CharField(max_length=20, default="free", db_column="planCode")

    class Meta:
        db_table = "opsdemo_Account"


class Tag(models.Model):
    """SafeBackfill(..., set_not_null=True): fill and NOT NULL in one CALL."""

    name = models.CharField(max_length=100)
    # Created nullable by 0005, filled and made NOT NULL by 0006.
    color = models.CharField(max_length=10)
