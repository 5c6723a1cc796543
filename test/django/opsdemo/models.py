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


class Person(models.Model):
    """
    SafeBackfill(expression=...): columns computed from the row's other
    columns, on a mixed-case table with a db_column ("eMail").
    """

    first_name = models.CharField(max_length=50)
    last_name = models.CharField(max_length=50, null=True)
    email = models.CharField(max_length=100, db_column="eMail")
    vip = models.BooleanField(default=False)
    # Only there so the test can show that a related lookup is refused.
    account = models.ForeignKey(Account, null=True, on_delete=models.SET_NULL)
    # Created nullable by 0007; 0008 fills it with Lower("email") and makes
    # it NOT NULL.
    email_lower = models.CharField(max_length=100)
    # Filled by 0008 from RawSQL; stays NULL where last_name is NULL.
    display_name = models.CharField(max_length=200, null=True)

    class Meta:
        db_table = "opsdemo_Person"


class Ticket(models.Model):
    """
    The two-deploy pattern: created with priority nullable by 0009, filled
    by a detached run started in 0010 (atomic), waited for and made NOT NULL
    by 0011 (EnsureBackfillFinished, SafeSetNotNull).
    """

    title = models.CharField(max_length=100)
    priority = models.IntegerField()


class Order(models.Model):
    """
    SafeUpdate / SafeDelete: created by 0012, rows normalised by 0013 (two
    SafeUpdates, Q wheres, Upper/Lower and F arithmetic), old ones purged by
    0014 (SafeDelete, a Q on a date).  A mixed-case table, a db_column.
    """

    currency = models.CharField(max_length=3, db_column="curCode")
    email = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    price_cents = models.IntegerField(null=True)
    created_at = models.DateTimeField()

    class Meta:
        db_table = "opsdemo_Order"
